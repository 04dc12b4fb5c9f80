// SPDX-License-Identifier: GPL-2.0
/*
 * touched_sweep_bench: what a sweep costs with touched_sweep(2), with
 * PAGEMAP_SCAN over userfaultfd async write-protect, and with soft-dirty,
 * measured side by side in one boot.
 *
 * Every measurement runs in a child process of its own, so that no
 * mechanism's state (a userfaultfd context, soft-dirty VMA flags, the
 * per-mm tracking state) carries over into the next one.  A child maps and
 * populates its memory, opts it in, sweeps once to start clean, waits for
 * the emulator's TLBs to settle (see struct settler), and then repeats:
 * write some random pages (timing the first writes), then time one sweep
 * that reports and clears (re-arms) them.  The first WARMUP_RUNS rounds
 * are not timed; the timed ones go on until there are RUNS of them and
 * they span MIN_SPAN_MS.  A sweep that reports fewer pages than were
 * written is an error, so a mechanism cannot look fast by missing writes.
 *
 * The threads scenario writes from several threads at once, each to a
 * tracked VMA of its own, to show what the first-write faults of a busy
 * multi-threaded target cost when they all follow one sweep.
 *
 * Results go out as JSON lines, one object per measurement, for
 * tools/testing/harness/bench.py to summarise.  Progress goes to stderr.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <linux/fs.h>
#include <linux/touched_sweep.h>
#include <linux/userfaultfd.h>

#ifndef __NR_touched_sweep
#define __NR_touched_sweep 463
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif

#define PAGE		4096UL
#define HPAGE		(2UL << 20)
#define MIB		(1UL << 20)
#define PM_SOFT_DIRTY	(1ULL << 55)
/* Room for every range of the largest touched-scaling step in one call. */
#define VEC_LEN		(1UL << 17)
#define MAX_SAMPLES	512
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
/*
 * Rounds run and thrown away before the timed ones.  Under TCG they also
 * let the software TLB, which settle_tlbs() left sized for SETTLE_PAGES
 * pages, grow to what a round uses: at 2 GiB it doubles once per round,
 * at the sweep's flush.
 */
#define WARMUP_RUNS	8
/* How long settle_tlbs() switches between processes on every CPU. */
#define SETTLE_MS	400
/*
 * Timed rounds go on past the RUNS asked for until they span MIN_SPAN_MS
 * (but stop at MAX_SAMPLES).  Under TCG the emulator runs about 1.7 times
 * slower now and then, for 100 to 300 ms at a time, every mechanism
 * alike.  Without a span, all the rounds of a fast measurement could fall
 * into one such stretch while those of a slow one outlast it, and the
 * medians would compare different states of the emulator.
 */
#define MIN_SPAN_MS	500

static int out_fd = STDOUT_FILENO;
static int runs = 11;
static bool quick;
/* -s: only settle the TLBs, before a benchmark of another program. */
static bool settle_only;
/* -m: measure only this mechanism (NULL: all), for profiles of one. */
static const char *only_mechanism;
/* Off while warming up: measure, but neither report nor print. */
static bool reporting = true;

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("touched_sweep_bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* xorshift64*: fixed seed, so every mechanism writes the same pages. */
static uint64_t rng_state;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

/*
 * Under TCG, QEMU sizes each vCPU's software TLB to what the guest used
 * between two flushes, and a full flush clears all of it: after a workload
 * that touches many pages between flushes (populating 2 GiB, a dense
 * sweep), one full flush costs up to a millisecond, and the TLB shrinks
 * again only after 100 ms windows of flushes that find it mostly empty.
 * touched_sweep and soft-dirty flush the whole TLB when their range is
 * large; PAGEMAP_SCAN flushes small ranges page by page.  So that no
 * measurement pays for pages an earlier step touched, it first waits while
 * a pair of helper processes on every CPU switch between each other for
 * SETTLE_MS, every switch a full flush, one of them reading SETTLE_PAGES
 * pages in between: that leaves each TLB sized for about that many pages,
 * room for a small step's working set, whether it was larger or smaller.
 */
#define SETTLE_PAGES	1024

struct settler {
	int go, done;		/* ours: ask for a settle, hear it is over */
	pid_t pids[2];
};

static struct settler *settlers;
static int nr_settlers;

/* A helper: pinned, killed with the benchmark, holding only @keep. */
static pid_t fork_helper(int cpu, const int *keep, int nr_keep)
{
	pid_t parent = getpid(), pid;
	cpu_set_t set;
	int fd, i;

	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid)
		return pid;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
		_exit(1);
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("pinning a helper to CPU %d: %s", cpu, strerror(errno));
	/* Without other ends held here, a dead partner shows as EOF. */
	for (fd = 3; fd < 1024; fd++) {
		for (i = 0; i < nr_keep && keep[i] != fd; i++)
			;
		if (i == nr_keep)
			close(fd);
	}
	return 0;
}

/* The partner: echoes every byte until its pipe closes. */
static void echo_main(int in, int out)
{
	char c;

	while (read(in, &c, 1) == 1)
		if (write(out, &c, 1) != 1)
			break;
	_exit(0);
}

/*
 * On every go, bounce a byte off the partner for SETTLE_MS, reading
 * SETTLE_PAGES pages between bounces, then say done.
 */
static void settler_main(int go, int done, int to, int from)
{
	volatile char *pages = malloc(SETTLE_PAGES * PAGE);
	unsigned long i, sum = 0;
	uint64_t end;
	char c;

	if (!pages)
		_exit(1);
	for (i = 0; i < SETTLE_PAGES; i++)
		pages[i * PAGE] = 1;
	while (read(go, &c, 1) == 1) {
		end = now_ns() + SETTLE_MS * 1000000ULL;
		while (now_ns() < end) {
			for (i = 0; i < SETTLE_PAGES; i++)
				sum += pages[i * PAGE];
			if (write(to, &c, 1) != 1 || read(from, &c, 1) != 1)
				_exit(1);
		}
		if (write(done, &c, 1) != 1)
			break;
	}
	_exit(sum == 0);
}

/* A pair of helpers on every CPU this process may run on. */
static void start_settlers(void)
{
	cpu_set_t allowed;
	int cpu, n = 0;

	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		die("sched_getaffinity: %s", strerror(errno));
	settlers = calloc(CPU_COUNT(&allowed), sizeof(*settlers));
	if (!settlers)
		die("out of memory");
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		int go[2], done[2], to[2], from[2];
		struct settler *st = &settlers[n];

		if (!CPU_ISSET(cpu, &allowed))
			continue;
		if (pipe(go) || pipe2(done, O_NONBLOCK) || pipe(to) ||
		    pipe(from))
			die("pipe: %s", strerror(errno));
		st->pids[0] = fork_helper(cpu, (int[]){ to[0], from[1] }, 2);
		if (!st->pids[0])
			echo_main(to[0], from[1]);
		st->pids[1] = fork_helper(cpu, (int[]){ go[0], done[1], to[1],
						       from[0] }, 4);
		if (!st->pids[1])
			settler_main(go[0], done[1], to[1], from[0]);
		close(go[0]);
		close(done[1]);
		close(to[0]);
		close(to[1]);
		close(from[0]);
		close(from[1]);
		st->go = go[1];
		st->done = done[0];
		nr_settlers = ++n;
	}
}

static void stop_settlers(void)
{
	int i, j;

	for (i = 0; i < nr_settlers; i++) {
		close(settlers[i].go);
		close(settlers[i].done);
		for (j = 0; j < 2; j++) {
			kill(settlers[i].pids[j], SIGKILL);
			waitpid(settlers[i].pids[j], NULL, 0);
		}
	}
	nr_settlers = 0;
}

/* Settle every vCPU's software TLB; see SETTLE_PAGES. */
static void settle_tlbs(void)
{
	struct pollfd pfd = { .events = POLLIN };
	char c = 's';
	ssize_t r;
	int i;

	for (i = 0; i < nr_settlers; i++) {
		/* A done left over from a settle whose caller was killed. */
		while ((r = read(settlers[i].done, &c, 1)) == 1)
			;
		if (!r || write(settlers[i].go, &c, 1) != 1)
			die("settle: a helper died");
	}
	for (i = 0; i < nr_settlers; i++) {
		pfd.fd = settlers[i].done;
		if (poll(&pfd, 1, -1) < 0 || read(pfd.fd, &c, 1) != 1)
			die("settle: a helper died");
	}
}

/* One JSON line, written with a single write() so children never mix. */
struct line {
	char buf[32768];
	size_t len;
};

static void line_add(struct line *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(l->buf + l->len, sizeof(l->buf) - l->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(l->buf) - l->len)
		die("JSON line too long");
	l->len += n;
}

static void line_samples(struct line *l, const char *key, const double *v,
			 int n)
{
	int i;

	line_add(l, ", \"%s\": [", key);
	for (i = 0; i < n; i++)
		line_add(l, "%s%.3f", i ? ", " : "", v[i]);
	line_add(l, "]");
}

static void line_emit(struct line *l)
{
	line_add(l, "}\n");
	if (write(out_fd, l->buf, l->len) != (ssize_t)l->len)
		die("writing results: %s", strerror(errno));
}

static void emit_skip(const char *scenario, const char *mech,
		      const char *reason)
{
	struct line l = { .len = 0 };

	line_add(&l, "{\"type\": \"skip\", \"scenario\": \"%s\", "
		 "\"mechanism\": \"%s\", \"reason\": \"%s\"", scenario, mech,
		 reason);
	line_emit(&l);
}

static void emit_error(const char *scenario, const char *mech,
		       const char *what)
{
	struct line l = { .len = 0 };

	line_add(&l, "{\"type\": \"error\", \"scenario\": \"%s\", "
		 "\"mechanism\": \"%s\", \"error\": \"%s\"", scenario, mech,
		 what);
	line_emit(&l);
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n < 0 ? -errno : 0;
}

static int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/*
 * The regions a measurement tracks: @nr VMAs of @pages pages each, one
 * page-sized hole apart so that they can never merge.
 */
struct layout {
	char *base;
	size_t span;		/* bytes from base to the end of the last VMA */
	unsigned long nr;
	unsigned long pages;	/* per VMA */
	bool thp;
};

static char *vma_addr(const struct layout *lo, unsigned long i)
{
	return lo->base + i * (lo->pages + 1) * PAGE;
}

static void layout_map(struct layout *lo, bool populate)
{
	size_t len = lo->pages * PAGE;
	size_t span = lo->nr * (lo->pages + 1) * PAGE - PAGE;
	size_t reserve = span + (lo->thp ? HPAGE : 0);
	unsigned long i;
	char *p;

	p = mmap(NULL, reserve, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		die("mmap %zu bytes: %s", reserve, strerror(errno));
	if (lo->thp) {
		char *aligned = (char *)(((uintptr_t)p + HPAGE - 1) &
					 ~(HPAGE - 1));

		if (aligned > p)
			munmap(p, aligned - p);
		munmap(aligned + span, p + reserve - (aligned + span));
		p = aligned;
	}
	lo->base = p;
	lo->span = span;
	for (i = 0; i + 1 < lo->nr; i++)
		munmap(vma_addr(lo, i) + len, PAGE);
	for (i = 0; i < lo->nr; i++) {
		char *v = vma_addr(lo, i);
		size_t off;

		madvise(v, len, lo->thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		if (!populate)
			continue;
		for (off = 0; off < len; off += PAGE)
			v[off] = 1;
	}
}

static long anon_huge_kib(void)
{
	char buf[4096], *p;

	if (read_file("/proc/self/smaps_rollup", buf, sizeof(buf)))
		return -1;
	p = strstr(buf, "AnonHugePages:");
	return p ? strtol(p + 14, NULL, 10) : -1;
}

/*
 * A mechanism: how to opt one VMA in, and how to sweep a window (report and
 * re-arm), returning how many pages it reported written.
 */
struct mechanism {
	const char *name;
	int (*open)(char *why, size_t whylen);
	int (*track)(char *addr, size_t len);
	long (*sweep)(char *start, char *end);
};

/* touched_sweep(2) */
static int ts_pidfd = -1;
static struct touched_range *ts_vec;

static long ts_call(unsigned int op, unsigned int flags, char *start,
		    char *end, struct touched_sweep_args *args)
{
	memset(args, 0, sizeof(*args));
	args->size = sizeof(*args);
	args->op = op;
	args->flags = flags;
	args->start = (uintptr_t)start;
	args->end = (uintptr_t)end;
	if (op == TOUCHED_SWEEP_OP_SWEEP) {
		args->vec = (uintptr_t)ts_vec;
		args->vec_len = VEC_LEN;
	}
	return syscall(__NR_touched_sweep, ts_pidfd, args);
}

static int ts_open(char *why, size_t whylen)
{
	struct touched_sweep_args args;

	ts_pidfd = syscall(__NR_pidfd_open, getpid(), 0);
	if (ts_pidfd < 0) {
		snprintf(why, whylen, "pidfd_open: %s", strerror(errno));
		return -1;
	}
	ts_vec = calloc(VEC_LEN, sizeof(*ts_vec));
	if (!ts_vec)
		die("out of memory");
	/* An empty window: tells ENOSYS apart without touching anything. */
	if (ts_call(TOUCHED_SWEEP_OP_SWEEP, 0, NULL, NULL, &args) < 0) {
		snprintf(why, whylen, "touched_sweep: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int ts_track(char *addr, size_t len)
{
	struct touched_sweep_args args;

	return ts_call(TOUCHED_SWEEP_OP_TRACK, 0, addr, addr + len, &args) ?
	       -errno : 0;
}

static long ts_sweep(char *start, char *end)
{
	struct touched_sweep_args args;
	long pages = 0, n, i;

	while (start < end) {
		n = ts_call(TOUCHED_SWEEP_OP_SWEEP, TOUCHED_SWEEP_CLEAR,
			    start, end, &args);
		if (n < 0)
			return -errno;
		for (i = 0; i < n; i++)
			if (ts_vec[i].flags & TOUCHED_RANGE_TOUCHED)
				pages += (ts_vec[i].end - ts_vec[i].start) /
					 PAGE;
		start = (char *)(uintptr_t)args.walk_end;
	}
	return pages;
}

/* PAGEMAP_SCAN over userfaultfd asynchronous write-protect */
static int pm_uffd = -1, pm_pagemap = -1;
static struct page_region *pm_vec;

static int pm_open(char *why, size_t whylen)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED,
	};

	pm_uffd = syscall(__NR_userfaultfd,
			  O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (pm_uffd < 0) {
		snprintf(why, whylen, "userfaultfd: %s", strerror(errno));
		return -1;
	}
	if (ioctl(pm_uffd, UFFDIO_API, &api)) {
		snprintf(why, whylen, "UFFDIO_API async WP: %s",
			 strerror(errno));
		return -1;
	}
	pm_pagemap = open("/proc/self/pagemap", O_RDONLY);
	if (pm_pagemap < 0) {
		snprintf(why, whylen, "pagemap: %s", strerror(errno));
		return -1;
	}
	pm_vec = calloc(VEC_LEN, sizeof(*pm_vec));
	if (!pm_vec)
		die("out of memory");
	return 0;
}

static int pm_track(char *addr, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	if (ioctl(pm_uffd, UFFDIO_REGISTER, &reg) ||
	    ioctl(pm_uffd, UFFDIO_WRITEPROTECT, &wp))
		return -errno;
	return 0;
}

static long pm_sweep(char *start, char *end)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.vec = (uintptr_t)pm_vec,
		.vec_len = VEC_LEN,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	long pages = 0, n, i;

	while (start < end) {
		arg.start = (uintptr_t)start;
		arg.end = (uintptr_t)end;
		n = ioctl(pm_pagemap, PAGEMAP_SCAN, &arg);
		if (n < 0)
			return -errno;
		for (i = 0; i < n; i++)
			pages += (pm_vec[i].end - pm_vec[i].start) / PAGE;
		start = (char *)(uintptr_t)arg.walk_end;
	}
	return pages;
}

/* soft-dirty: read pagemap bit 55, then clear_refs "4" for the whole mm */
static int sd_pagemap = -1, sd_clear_refs = -1;
static uint64_t *sd_buf;
static size_t sd_buf_pages;

static int sd_open(char *why, size_t whylen)
{
	sd_pagemap = open("/proc/self/pagemap", O_RDONLY);
	sd_clear_refs = open("/proc/self/clear_refs", O_WRONLY);
	if (sd_pagemap < 0 || sd_clear_refs < 0) {
		snprintf(why, whylen, "pagemap or clear_refs: %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

static int sd_track(char *addr, size_t len)
{
	(void)addr;
	(void)len;
	return 0;
}

static long sd_sweep(char *start, char *end)
{
	size_t pages = (end - start) / PAGE, i;
	long dirty = 0;
	ssize_t n;

	if (pages > sd_buf_pages) {
		free(sd_buf);
		sd_buf = malloc(pages * sizeof(*sd_buf));
		if (!sd_buf)
			die("out of memory");
		sd_buf_pages = pages;
	}
	n = pread(sd_pagemap, sd_buf, pages * sizeof(*sd_buf),
		  (uintptr_t)start / PAGE * sizeof(*sd_buf));
	if (n != (ssize_t)(pages * sizeof(*sd_buf)))
		return n < 0 ? -errno : -EIO;
	for (i = 0; i < pages; i++)
		if (sd_buf[i] & PM_SOFT_DIRTY)
			dirty++;
	if (pwrite(sd_clear_refs, "4", 1, 0) != 1)
		return -errno;
	return dirty;
}

/* untracked memory: the baseline for the first-write cost */
static int un_open(char *why, size_t whylen)
{
	(void)why;
	(void)whylen;
	return 0;
}

static long un_sweep(char *start, char *end)
{
	(void)start;
	(void)end;
	return 0;
}

static const struct mechanism mechanisms[] = {
	{ "touched_sweep", ts_open, ts_track, ts_sweep },
	{ "pagemap_scan", pm_open, pm_track, pm_sweep },
	{ "soft_dirty", sd_open, sd_track, sd_sweep },
};

static const struct mechanism untracked = {
	"untracked", un_open, sd_track, un_sweep
};

/*
 * Which pages to write: @touched distinct pages, each in a different VMA
 * when there are at least as many VMAs as pages, and all among the first
 * @within pages (or VMAs) if @within is not zero.  With @repeat, @touched
 * random pages that may repeat.  Returns how many distinct pages.
 */
static unsigned long pick_pages(const struct layout *lo, unsigned long touched,
				unsigned long within, bool repeat, char **out)
{
	unsigned long total = lo->nr * lo->pages, i, j, idx, distinct = 0;
	bool by_vma = lo->nr >= touched && lo->nr > 1 && !repeat;
	unsigned long space = by_vma ? lo->nr : total;

	if (within && within < space)
		space = within;
	uint8_t *used = calloc((space + 7) / 8, 1);

	if (!used)
		die("out of memory");
	for (i = 0; i < touched; i++) {
		do {
			idx = rng() % space;
		} while (!repeat && (used[idx / 8] & (1 << (idx % 8))));
		if (!(used[idx / 8] & (1 << (idx % 8))))
			distinct++;
		used[idx / 8] |= 1 << (idx % 8);
		if (by_vma) {
			j = rng() % lo->pages;
			out[i] = vma_addr(lo, idx) + j * PAGE;
		} else {
			out[i] = vma_addr(lo, idx / lo->pages) +
				 (idx % lo->pages) * PAGE;
		}
	}
	free(used);
	return distinct;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double s[MAX_SAMPLES];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

struct sweep_case {
	const char *scenario;
	unsigned long vmas;
	unsigned long pages;	/* per VMA */
	unsigned long touched;
	unsigned long within;	/* write only among the first pages */
	bool repeat;		/* @touched random writes, pages may repeat */
	bool thp;
};

/* One measurement's JSON line, and its summary on stderr. */
static void emit_measurement(const struct sweep_case *c,
			     const struct mechanism *m, unsigned long distinct,
			     const double *sweep_us, const double *write_ns,
			     int n, long huge_kib)
{
	struct line l = { .len = 0 };

	if (!reporting)
		return;
	line_add(&l, "{\"type\": \"measurement\", \"scenario\": \"%s\", "
		 "\"mechanism\": \"%s\", \"tracked_mib\": %.3f, "
		 "\"touched_pages\": %lu, \"writes\": %lu, \"vmas\": %lu, "
		 "\"thp\": %s",
		 c->scenario, m->name,
		 (double)c->vmas * c->pages * PAGE / MIB, distinct, c->touched,
		 c->vmas, c->thp ? "true" : "false");
	if (c->thp)
		line_add(&l, ", \"anon_huge_kib\": %ld", huge_kib);
	line_samples(&l, "sweep_us", sweep_us, m == &untracked ? 0 : n);
	line_samples(&l, "first_write_ns", write_ns, n);
	line_emit(&l);
	fprintf(stderr, "  %-13s %-12s %9.1f MiB %6lu VMAs %6lu pages: "
		"sweep %10.1f us, first write %8.0f ns/page, %d rounds\n",
		c->scenario, m->name, (double)c->vmas * c->pages * PAGE / MIB,
		c->vmas, distinct,
		m == &untracked ? 0.0 : median(sweep_us, n),
		median(write_ns, n), n);
}

/*
 * Run another round?  @r counts the rounds run, from -WARMUP_RUNS, so it
 * is also the number of timed ones; the first timed round sets *@start.
 * At least @runs timed rounds, until they span MIN_SPAN_MS (quick runs:
 * @runs will do), at most MAX_SAMPLES.
 */
static bool another_round(int r, uint64_t *start)
{
	if (!r)
		*start = now_ns();
	if (r < runs)
		return true;
	if (r >= MAX_SAMPLES || quick)
		return false;
	return now_ns() - *start < MIN_SPAN_MS * 1000000ULL;
}

/*
 * Open @m, map and populate @lo and opt every VMA in.  Returns 0, -1 if
 * the mechanism is skipped (not asked for, or not available), or 1 after
 * reporting an error.
 */
static int prepare(const struct sweep_case *c, const struct mechanism *m,
		   struct layout *lo)
{
	char why[256], msg[320];
	unsigned long i;
	int r;

	if (only_mechanism && strcmp(only_mechanism, m->name))
		return -1;
	if (m->open(why, sizeof(why))) {
		emit_skip(c->scenario, m->name, why);
		return -1;
	}
	layout_map(lo, true);
	for (i = 0; i < lo->nr; i++) {
		r = m->track(vma_addr(lo, i), lo->pages * PAGE);
		if (r) {
			snprintf(msg, sizeof(msg), "opting in: %s",
				 strerror(-r));
			emit_error(c->scenario, m->name, msg);
			return 1;
		}
	}
	return 0;
}

/*
 * Time one sweep of all of @lo into *@us.  Returns 0, or 1 after reporting
 * an error, which a sweep that reports fewer than the @written pages is.
 */
static int timed_sweep(const struct sweep_case *c, const struct mechanism *m,
		       const struct layout *lo, unsigned long written,
		       double *us)
{
	char msg[320];
	uint64_t t0, t1;
	long found;

	t0 = now_ns();
	found = m->sweep(lo->base, lo->base + lo->span);
	t1 = now_ns();
	*us = (t1 - t0) / 1000.0;
	if (found < 0) {
		snprintf(msg, sizeof(msg), "sweep: %s", strerror(-found));
		emit_error(c->scenario, m->name, msg);
		return 1;
	}
	if (m != &untracked && (unsigned long)found < written) {
		snprintf(msg, sizeof(msg),
			 "sweep reported %ld pages, %lu were written",
			 found, written);
		emit_error(c->scenario, m->name, msg);
		return 1;
	}
	return 0;
}

/*
 * Sweep all of @lo once, since everything populated counts as written,
 * then settle the TLBs.  Returns 0, or 1 after reporting an error.
 */
static int start_clean(const struct sweep_case *c, const struct mechanism *m,
		       const struct layout *lo)
{
	if (m->sweep(lo->base, lo->base + lo->span) < 0) {
		emit_error(c->scenario, m->name, "first sweep failed");
		return 1;
	}
	settle_tlbs();
	return 0;
}

/* One measurement, in the calling (child) process. */
static int measure(const struct sweep_case *c, const struct mechanism *m)
{
	double sweep_us[MAX_SAMPLES], write_ns[MAX_SAMPLES];
	struct layout lo = {
		.nr = c->vmas, .pages = c->pages, .thp = c->thp,
	};
	unsigned long i, distinct = 0;
	uint64_t start = 0;
	long huge_kib = -1;
	char **pages;
	int r;

	r = prepare(c, m, &lo);
	if (r)
		return r > 0;
	pages = calloc(c->touched, sizeof(*pages));
	if (!pages)
		die("out of memory");
	if (c->thp)
		huge_kib = anon_huge_kib();
	if (start_clean(c, m, &lo))
		return 1;
	rng_state = 0x9E3779B97F4A7C15ULL ^ c->touched ^ (c->vmas << 20);
	/* The first rounds also pay for translating code and warming caches. */
	for (r = -WARMUP_RUNS; another_round(r, &start); r++) {
		double write_one, sweep_one;
		uint64_t t0, t1;

		distinct = pick_pages(&lo, c->touched, c->within, c->repeat,
				      pages);
		t0 = now_ns();
		for (i = 0; i < c->touched; i++)
			*(volatile uint64_t *)(pages[i] + 64) = r + 1;
		t1 = now_ns();
		write_one = (double)(t1 - t0) / c->touched;
		if (timed_sweep(c, m, &lo, distinct, &sweep_one))
			return 1;
		if (r < 0)
			continue;
		write_ns[r] = write_one;
		sweep_us[r] = sweep_one;
	}
	free(pages);
	emit_measurement(c, m, distinct, sweep_us, write_ns, r, huge_kib);
	return 0;
}

/* Run @fn(@c, @m) in a child of its own; returns non-zero on failure. */
static int in_child(int (*fn)(const struct sweep_case *,
			      const struct mechanism *),
		    const struct sweep_case *c, const struct mechanism *m)
{
	int status;
	pid_t pid;

	fflush(stderr);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (!pid)
		_exit(fn(c, m));
	if (waitpid(pid, &status, 0) < 0)
		die("waitpid: %s", strerror(errno));
	if (WIFEXITED(status) && !WEXITSTATUS(status))
		return 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 1) {
		char msg[64];

		snprintf(msg, sizeof(msg), "benchmark child died (status %#x)",
			 status);
		emit_error(c->scenario, m->name, msg);
	}
	return 1;
}

static int run_all_mechanisms(const struct sweep_case *c)
{
	unsigned int i;
	int failed = 0;

	for (i = 0; i < ARRAY_SIZE(mechanisms); i++)
		failed |= in_child(measure, c, &mechanisms[i]);
	return failed;
}

static const unsigned long size_mib[] = { 64, 256, 1024, 2048 };

/*
 * Children per mechanism and size in the size scenarios, taking turns
 * across mechanisms; their samples are pooled (tools/testing/harness/
 * bench.py joins records of one configuration).  Under TCG a child may
 * run all its rounds about 1.8 times slower than the next one with the
 * same settings, first writes included, whatever the mechanism: in one
 * boot, four children in turn swept 2 GiB in 492, 266, 321 and 492 us.
 * With one child per mechanism, the 2 GiB ratios depended on which ones
 * drew a slow run.  The children write the same pages (the seed is the
 * configuration's): only the process differs.
 */
#define SIZE_CHILDREN	3

/*
 * Size scaling: @thp on huge pages; @clustered writing only within the
 * first 64 MiB, which keeps the number of page tables the written pages
 * fall in the same at every size.
 */
static int scenario_size(bool thp, bool clustered)
{
	unsigned int i, k, n = quick ? 2 : 4;
	int failed = 0;

	for (i = 0; i < n; i++) {
		struct sweep_case c = {
			.scenario = thp ? "thp" : clustered ? "clustered" : "size",
			.vmas = 1, .pages = size_mib[i] * MIB / PAGE,
			.touched = 256, .within = clustered ? 64 * MIB / PAGE : 0,
			.thp = thp,
		};

		for (k = 0; k < (quick ? 1 : SIZE_CHILDREN); k++)
			failed |= run_all_mechanisms(&c);
	}
	return failed;
}

/*
 * 16 to 65536 distinct pages written in 1 GiB; then as many random writes
 * as it has pages (about 63 % of them written), and every page.
 */
static int scenario_touched(void)
{
	unsigned long pages = (quick ? 256 : 1024) * MIB / PAGE;
	unsigned long touched, max = quick ? 4096 : 65536;
	int failed = 0;

	for (touched = 16; touched <= max; touched *= 4) {
		struct sweep_case c = {
			.scenario = "touched", .vmas = 1, .pages = pages,
			.touched = touched,
		};

		failed |= run_all_mechanisms(&c);
	}
	for (int repeat = 1; repeat >= 0; repeat--) {
		struct sweep_case c = {
			.scenario = "touched", .vmas = 1, .pages = pages,
			.touched = pages, .repeat = repeat,
		};

		failed |= run_all_mechanisms(&c);
	}
	return failed;
}

static int scenario_vmas(void)
{
	unsigned long vmas, max = quick ? 1000 : 10000;
	int failed = 0;

	for (vmas = 10; vmas <= max; vmas *= 10) {
		struct sweep_case c = {
			.scenario = "vmas", .vmas = vmas, .pages = 4,
			.touched = 10,
		};

		failed |= run_all_mechanisms(&c);
	}
	return failed;
}

/*
 * Touch all the memory the guest has free once.  An emulator backs guest
 * memory lazily, so whichever measurement first used a stretch of it paid
 * for the host's page faults too.
 */
static void touch_free_memory(void)
{
	char buf[8192], *p, *mem;
	size_t len, off;
	long avail;

	if (read_file("/proc/meminfo", buf, sizeof(buf)))
		return;
	p = strstr(buf, "MemAvailable:");
	avail = p ? strtol(p + 13, NULL, 10) * 1024 : 0;
	if (avail < 512 * (long)MIB)
		return;
	len = (avail - 256 * MIB) & ~(HPAGE - 1);
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return;
	madvise(mem, len, MADV_HUGEPAGE);
	for (off = 0; off < len; off += PAGE)
		mem[off] = 1;
	munmap(mem, len);
}

/*
 * The first measurements after boot ran slower than the same ones later
 * (guest memory not yet backed by the host, code not yet translated by
 * the emulator, boot-time work still going): touch the free memory, then
 * measure 64 MiB with every mechanism once and throw the results away.
 */
static int warm_up(void)
{
	struct sweep_case c = {
		.scenario = "warm-up", .vmas = 1, .pages = 64 * MIB / PAGE,
		.touched = 256,
	};
	int failed;

	touch_free_memory();
	reporting = false;
	failed = run_all_mechanisms(&c);
	reporting = true;
	return failed;
}

static int scenario_first_write(void)
{
	struct sweep_case c = {
		.scenario = "first_write", .vmas = 1,
		.pages = 256 * MIB / PAGE, .touched = 4096,
	};

	return run_all_mechanisms(&c) | in_child(measure, &c, &untracked);
}

/* A thread of the threads scenario: writes every page of its VMA per round. */
struct writer {
	pthread_t thread;
	char *base;
	unsigned long pages;
	pthread_barrier_t *go;		/* a round starts */
	pthread_barrier_t *done;	/* every writer is done with it */
	const int *round;		/* value to write; < 0 to quit */
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	unsigned long i;
	int value;

	for (;;) {
		pthread_barrier_wait(w->go);
		value = *w->round;
		if (value < 0)
			return NULL;
		for (i = 0; i < w->pages; i++)
			*(volatile uint64_t *)(w->base + i * PAGE + 64) = value;
		pthread_barrier_wait(w->done);
	}
}

/*
 * @c->vmas threads, each writing all @c->pages pages of its own tracked
 * VMA once per round, all released at once after a sweep.  The first-write
 * figure is the wall time of a round divided by the pages written, so it
 * falls as the faults of the threads run in parallel.
 */
static int measure_threads(const struct sweep_case *c,
			   const struct mechanism *m)
{
	double sweep_us[MAX_SAMPLES], write_ns[MAX_SAMPLES], sweep_one;
	struct layout lo = { .nr = c->vmas, .pages = c->pages };
	unsigned long total = c->vmas * c->pages, i;
	pthread_barrier_t go, done;
	struct writer *w;
	uint64_t start = 0;
	int r, round = 0;

	r = prepare(c, m, &lo);
	if (r)
		return r > 0;
	w = calloc(lo.nr, sizeof(*w));
	if (!w || pthread_barrier_init(&go, NULL, lo.nr + 1) ||
	    pthread_barrier_init(&done, NULL, lo.nr + 1))
		die("out of memory");
	for (i = 0; i < lo.nr; i++) {
		w[i] = (struct writer){
			.base = vma_addr(&lo, i), .pages = lo.pages,
			.go = &go, .done = &done, .round = &round,
		};
		if (pthread_create(&w[i].thread, NULL, writer_main, &w[i]))
			die("pthread_create: %s", strerror(errno));
	}
	if (start_clean(c, m, &lo))
		return 1;
	for (r = -WARMUP_RUNS; another_round(r, &start); r++) {
		uint64_t t0, t1;

		round = r + WARMUP_RUNS + 1;
		t0 = now_ns();
		pthread_barrier_wait(&go);
		pthread_barrier_wait(&done);
		t1 = now_ns();
		if (timed_sweep(c, m, &lo, total, &sweep_one))
			return 1;
		if (r < 0)
			continue;
		write_ns[r] = (double)(t1 - t0) / total;
		sweep_us[r] = sweep_one;
	}
	round = -1;
	pthread_barrier_wait(&go);
	for (i = 0; i < lo.nr; i++)
		pthread_join(w[i].thread, NULL);
	free(w);
	emit_measurement(c, m, total, sweep_us, write_ns, r, -1);
	return 0;
}

/*
 * First writes from 1, 2 and 4 threads at once, to distinct VMAs of
 * 8192 pages: with touched_sweep, soft-dirty and PAGEMAP_SCAN, and on
 * untracked memory, whose writes do not fault.
 */
static int scenario_threads(void)
{
	static const unsigned long threads[] = { 1, 2, 4 };
	unsigned int i, j;
	int failed = 0;

	for (i = 0; i < ARRAY_SIZE(threads); i++) {
		struct sweep_case c = {
			.scenario = "threads", .vmas = threads[i],
			.pages = quick ? 1024 : 8192,
		};

		c.touched = c.vmas * c.pages;
		for (j = 0; j < ARRAY_SIZE(mechanisms); j++)
			failed |= in_child(measure_threads, &c, &mechanisms[j]);
		failed |= in_child(measure_threads, &c, &untracked);
	}
	return failed;
}

/*
 * Kernel memory as the allocators count it: unreclaimable slab (which
 * includes large kmalloc allocations) plus vmalloc, after folding the
 * per-CPU counters.
 */
static long kernel_bytes(void)
{
	char buf[8192], *p;
	long slab, vmalloc;

	if (write_file("/proc/sys/vm/stat_refresh", "1"))
		return -1;
	if (read_file("/proc/meminfo", buf, sizeof(buf)))
		return -1;
	p = strstr(buf, "\nSUnreclaim:");
	slab = p ? strtol(p + 12, NULL, 10) : -1;
	p = strstr(buf, "\nVmallocUsed:");
	vmalloc = p ? strtol(p + 13, NULL, 10) : -1;
	if (slab < 0 || vmalloc < 0)
		return -1;
	return (slab + vmalloc) * 1024;
}

/*
 * Tracking memory of @c->vmas VMAs of @c->pages pages, none populated:
 * tracking state does not depend on population.  Per repetition, the
 * allocator counters before opting in and after.  A few VMAs are opted in
 * and out first so that the per-mm state and a partial slab exist, which
 * leaves the figure to what the VMAs themselves cost.
 */
static int measure_memory(const struct sweep_case *c,
			  const struct mechanism *m)
{
	struct layout lo = { .nr = c->vmas, .pages = c->pages };
	struct layout warm = { .nr = 64, .pages = 1 };
	struct touched_sweep_args args;
	long bytes[MAX_SAMPLES], before, after;
	unsigned long i, budget;
	struct line l = { .len = 0 };
	char why[256];
	int r;

	if (m->open(why, sizeof(why))) {
		emit_skip(c->scenario, m->name, why);
		return 0;
	}
	layout_map(&lo, false);
	layout_map(&warm, false);
	for (i = 0; i < warm.nr; i++)
		m->track(vma_addr(&warm, i), PAGE);
	ts_call(TOUCHED_SWEEP_OP_UNTRACK, 0, warm.base, warm.base + warm.span,
		&args);
	for (r = 0; r < runs; r++) {
		before = kernel_bytes();
		for (i = 0; i < lo.nr; i++)
			if (m->track(vma_addr(&lo, i), lo.pages * PAGE)) {
				emit_error(c->scenario, m->name, "opting in");
				return 1;
			}
		after = kernel_bytes();
		if (before < 0 || after < 0) {
			emit_error(c->scenario, m->name,
				   "reading /proc/meminfo");
			return 1;
		}
		bytes[r] = after - before;
		if (ts_call(TOUCHED_SWEEP_OP_UNTRACK, 0, lo.base,
			    lo.base + lo.span, &args)) {
			emit_error(c->scenario, m->name, "opting out");
			return 1;
		}
	}
	budget = c->vmas * c->pages / 8 + c->vmas * 128;
	line_add(&l, "{\"type\": \"memory\", \"mechanism\": \"%s\", "
		 "\"what\": \"%s\", \"tracked_mib\": %.3f, \"vmas\": %lu, "
		 "\"budget_bytes\": %lu, \"bytes\": [", m->name, c->scenario,
		 (double)c->vmas * c->pages * PAGE / MIB, c->vmas, budget);
	for (r = 0; r < runs; r++)
		line_add(&l, "%s%ld", r ? ", " : "", bytes[r]);
	line_add(&l, "]");
	line_emit(&l);
	fprintf(stderr, "  memory %-7s %9.1f MiB %6lu VMAs: %ld bytes "
		"(budget %lu)\n", c->scenario,
		(double)c->vmas * c->pages * PAGE / MIB, c->vmas, bytes[runs / 2],
		budget);
	return 0;
}

static int scenario_memory(void)
{
	/*
	 * 8 GiB in one VMA: the per-page cost, well above page rounding; and
	 * 6 GiB, whose bitmap is not a power of two in size, to show what
	 * rounding costs.
	 */
	struct sweep_case per_gib = {
		.scenario = "per_gib", .vmas = 1, .pages = (8UL << 30) / PAGE,
	};
	struct sweep_case per_gib_odd = {
		.scenario = "per_gib", .vmas = 1, .pages = (6UL << 30) / PAGE,
	};
	/* Many one-page VMAs: the per-VMA cost. */
	struct sweep_case per_vma = {
		.scenario = "per_vma", .vmas = quick ? 1000 : 10000, .pages = 1,
	};

	return in_child(measure_memory, &per_gib, &mechanisms[0]) |
	       in_child(measure_memory, &per_gib_odd, &mechanisms[0]) |
	       in_child(measure_memory, &per_vma, &mechanisms[0]);
}

static void wait_for_tsc(const char **clocksource)
{
	static char buf[64];
	int i;

	for (i = 0; i < 300; i++) {
		if (!read_file("/sys/devices/system/clocksource/clocksource0/"
			       "current_clocksource", buf, sizeof(buf))) {
			buf[strcspn(buf, "\n")] = '\0';
			if (!strcmp(buf, "tsc"))
				break;
		}
		usleep(100000);
	}
	*clocksource = buf;
	if (strcmp(buf, "tsc"))
		fprintf(stderr, "touched_sweep_bench: clocksource is %s, not "
			"tsc; timings are coarse\n", buf);
}

static void emit_meta(const char *clocksource)
{
	struct line l = { .len = 0 };
	struct utsname u;
	char buf[8192], *p;

	uname(&u);
	buf[0] = '\0';
	read_file("/proc/meminfo", buf, sizeof(buf));
	p = strstr(buf, "MemTotal:");
	line_add(&l, "{\"type\": \"meta\", \"kernel\": \"%s\", "
		 "\"clocksource\": \"%s\", \"cpus\": %ld, "
		 "\"mem_total_kib\": %ld, \"page_size\": %ld, \"runs\": %d, "
		 "\"min_span_ms\": %d",
		 u.release, clocksource, sysconf(_SC_NPROCESSORS_ONLN),
		 p ? strtol(p + 9, NULL, 10) : -1L, sysconf(_SC_PAGESIZE),
		 runs, quick ? 0 : MIN_SPAN_MS);
	line_emit(&l);
}

static const char *const scenario_names[] = {
	"size", "clustered", "touched", "vmas", "first_write", "memory", "thp",
	"threads",
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: touched_sweep_bench [-o FILE] [-r RUNS] [-m MECHANISM] [-q] [SCENARIO...]\n"
"       touched_sweep_bench -s [-o FILE] [-r RUNS]\n"
"\n"
"Time a sweep (report and re-arm) of touched_sweep(2), PAGEMAP_SCAN with\n"
"userfaultfd async write-protect, and soft-dirty, and the first write\n"
"after one.  Writes JSON lines to FILE (default stdout), progress to\n"
"stderr.  Needs root (for /proc/sys/vm/stat_refresh and THP settings).\n"
"\n"
"Scenarios (default: all):\n"
"  size         64 MiB to 2 GiB tracked, 256 random pages written\n"
"  clustered    the same, writing only within the first 64 MiB\n"
"  touched      1 GiB tracked, 16 to 65536 pages written, then as many\n"
"               random writes as pages, then every page\n"
"  vmas         10 to 10000 tracked VMAs of 4 pages, 10 written\n"
"  first_write  per-page cost of the first write after a sweep\n"
"  memory       kernel memory per tracked GiB and per tracked VMA\n"
"  thp          like size, on transparent huge pages\n"
"  threads      first writes of 1, 2 and 4 threads at once, each to a\n"
"               tracked VMA of its own (32 MiB)\n"
"\n"
"  -o FILE   write the results to FILE\n"
"  -r RUNS   timed rounds per measurement process, at least (default 11,\n"
"            at most %d); more follow until the timed rounds span\n"
"            %d ms, except with -q\n"
"  -m NAME   measure only touched_sweep, pagemap_scan or soft_dirty\n"
"            (for profiling one; the targets need all three)\n"
"  -q        quick: fewer and smaller steps, to check the benchmark\n"
"  -s        settle every CPU's TLB as before each measurement, write the\n"
"            meta record (with RUNS) and exit, for a benchmark run by\n"
"            another program\n",
		MAX_SAMPLES, MIN_SPAN_MS);
}

int main(int argc, char **argv)
{
	const char *clocksource;
	bool want[ARRAY_SIZE(scenario_names)] = { false };
	bool any = false;
	int opt, failed = 0;
	unsigned int i;

	while ((opt = getopt(argc, argv, "o:r:m:qsh")) != -1) {
		switch (opt) {
		case 'm':
			only_mechanism = optarg;
			break;
		case 'o':
			out_fd = open(optarg, O_WRONLY | O_CREAT | O_TRUNC |
				      O_APPEND, 0644);
			if (out_fd < 0)
				die("%s: %s", optarg, strerror(errno));
			break;
		case 'r':
			runs = atoi(optarg);
			if (runs < 1 || runs > MAX_SAMPLES)
				die("-r: between 1 and %d", MAX_SAMPLES);
			break;
		case 'q':
			quick = true;
			break;
		case 's':
			settle_only = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	for (; optind < argc; optind++) {
		for (i = 0; i < ARRAY_SIZE(scenario_names); i++)
			if (!strcmp(argv[optind], scenario_names[i]))
				break;
		if (i == ARRAY_SIZE(scenario_names)) {
			fprintf(stderr, "touched_sweep_bench: no scenario "
				"'%s'\n", argv[optind]);
			usage(stderr);
			return 2;
		}
		want[i] = true;
		any = true;
	}
	if (settle_only && (any || only_mechanism)) {
		fprintf(stderr, "touched_sweep_bench: -s runs no scenario\n");
		usage(stderr);
		return 2;
	}
	if (!any)
		memset(want, true, sizeof(want));
	for (i = 0; only_mechanism && i < ARRAY_SIZE(mechanisms); i++)
		if (!strcmp(only_mechanism, mechanisms[i].name))
			break;
	if (i == ARRAY_SIZE(mechanisms)) {
		fprintf(stderr, "touched_sweep_bench: no mechanism '%s'\n",
			only_mechanism);
		usage(stderr);
		return 2;
	}

	wait_for_tsc(&clocksource);
	/* THP only where a scenario asks for it with MADV_HUGEPAGE. */
	if (write_file("/sys/kernel/mm/transparent_hugepage/enabled",
		       "madvise"))
		fprintf(stderr, "touched_sweep_bench: cannot set THP to "
			"madvise; THP results may be mixed\n");
	emit_meta(clocksource);
	start_settlers();
	if (settle_only) {
		fprintf(stderr, "settling the TLBs\n");
		settle_tlbs();
		stop_settlers();
		return 0;
	}
	fprintf(stderr, "warming up\n");
	failed |= warm_up();

	if (want[0]) {
		fprintf(stderr, "size scaling\n");
		failed |= scenario_size(false, false);
	}
	if (want[1]) {
		fprintf(stderr, "size scaling, pages written within 64 MiB\n");
		failed |= scenario_size(false, true);
	}
	if (want[2]) {
		fprintf(stderr, "touched scaling\n");
		failed |= scenario_touched();
	}
	if (want[3]) {
		fprintf(stderr, "many VMAs\n");
		failed |= scenario_vmas();
	}
	if (want[4]) {
		fprintf(stderr, "first-write cost\n");
		failed |= scenario_first_write();
	}
	if (want[5]) {
		fprintf(stderr, "memory overhead\n");
		failed |= scenario_memory();
	}
	if (want[6]) {
		fprintf(stderr, "transparent huge pages\n");
		failed |= scenario_size(true, false);
	}
	if (want[7]) {
		fprintf(stderr, "first writes from several threads\n");
		failed |= scenario_threads();
	}
	stop_settlers();
	return failed;
}
