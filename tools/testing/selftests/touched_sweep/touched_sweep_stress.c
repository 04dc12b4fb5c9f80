// SPDX-License-Identifier: GPL-2.0
/*
 * Stress test of touched_sweep(2): no write is lost while a dumper sweeps a
 * target that keeps writing and keeps changing its mappings.
 *
 * The test process forks a target.  The target maps NR_REGIONS regions,
 * each living at one of two fixed "homes", tracks them itself, and runs
 * writer threads that store unique values (writer << 48 | sequence) at
 * random places, directly or, one burst in eight, through /proc/self/mem
 * (the kernel's copy through a page it looked up), and a disturber thread
 * that changes the regions under them: mprotect() round trips, munmap()
 * and mmap() again, mmap(MAP_FIXED) over part of a region, mremap() to the
 * other home, MADV_DONTNEED, MADV_FREE, fork() with a child that writes
 * its copy, and THP advice.
 * The test process is the dumper: it mirrors every region in an image that
 * it updates round after round from clearing sweeps, as a pre-copy dumper
 * does.  At the end it stops the target, runs one last round, and compares
 * each image with the target's memory byte for byte.
 *
 * Why the images must match (see "Nothing is lost" in
 * Documentation/userspace-api/touched_sweep.rst):
 *
 * - Each region has a descriptor (address, generation) shared with the
 *   dumper.  The disturber makes the generation odd before it unmaps, maps
 *   over or moves a region, and even again only after the new mapping is
 *   tracked and its address published.  Writers are held off meanwhile (by
 *   the region's rwlock), so every store lands in a tracked mapping.
 * - A store marks its page.  A mark is cleared only by a clearing sweep
 *   that reports the page TOUCHED (the dumper then copies it from the
 *   region's current home) or GONE.
 * - Whatever a region leaves behind is reported GONE (the whole window if
 *   the kernel lost the record).  The dumper then flags the regions whose
 *   homes the range overlaps, and clears a flag only by a full copy made
 *   while the generation was even and unchanged, that is from the mapping
 *   that is still there, and after the sweep that raised the flag.  A
 *   TOUCHED range that the dumper could not place (the region was moving)
 *   or copied from a mapping being replaced comes with or before such a
 *   GONE, which forces a full copy after it.
 *
 * So the last change of every page is followed either by a copy from its
 * final mapping or by a mark that the stopped round reports and copies.  A
 * mismatch is a lost write.
 *
 * TOUCHED_SWEEP_STRESS_WRITES (default 1000000) and
 * TOUCHED_SWEEP_STRESS_SECONDS (default 0) are minimums: the run goes on
 * until both are reached, MIN_SWEEPS rounds were made and every disturber
 * op has happened.  The fault_injection variant runs a quarter of each with
 * touched_sweep's own allocations failing
 * (/sys/kernel/debug/fail_touched_sweep), and SKIPs without that knob.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/touched_sweep.h>

#include "../kselftest_harness.h"
#include "touched_sweep_helpers.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define NR_REGIONS	4
#define REGION_SIZE	(4UL << 20)
#define HOME_ALIGN	(2UL << 20)	/* THP size, and the gap between homes */
#define HOME_STRIDE	(REGION_SIZE + HOME_ALIGN)
#define NR_CHUNKS	16		/* VMA edges stay on this grid */
#define CHUNK_SIZE	(REGION_SIZE / NR_CHUNKS)
#define NR_WRITERS	2
#define VEC_LEN		16		/* small, so that sweeps resume */
#define HISTORY		8
#define DISTURB_US	5000		/* mean pause between disturber ops */
#define MIN_SWEEPS	64		/* at least this many rounds */
#define MAX_RETRIES	100000
#define SHOW_MISMATCHES	5
#define FAIL_DIR	"/sys/kernel/debug/fail_touched_sweep"

enum op_kind {
	OP_MPROTECT, OP_REMAP, OP_MAP_OVER, OP_MREMAP,
	OP_DONTNEED, OP_FREE, OP_FORK, OP_THP, NR_OPS
};

static const char * const op_names[NR_OPS] = {
	"mprotect", "unmap+map", "map-over", "mremap",
	"dontneed", "free", "fork", "thp",
};

struct op_record {
	uint32_t kind;
	uint32_t gen;
	uint64_t seq[NR_WRITERS];	/* writers' progress at the time */
};

/* One region, as the target publishes it to the dumper. */
struct region_desc {
	uint64_t home[2];
	uint64_t addr;		/* current home */
	uint64_t gen;		/* odd while the region changes identity */
	uint64_t nr_hist;
	struct op_record hist[HISTORY];
};

/* MAP_SHARED between the dumper and the target. */
struct shared {
	int ready;
	int stop;
	int failed;
	char why[160];
	uint64_t writes[NR_WRITERS];
	uint64_t ops[NR_OPS];
	uint64_t enomem;	/* ENOMEM returns the target retried */
	uint64_t collapsed;	/* MADV_COLLAPSE that succeeded */
	struct region_desc reg[NR_REGIONS];
};

static size_t page_size;
static uint64_t window_end;	/* every sweep covers [0, window_end) */
static struct shared *sh;
static pthread_rwlock_t region_lock[NR_REGIONS];
static int target_pidfd;

static void __attribute__((constructor)) init_page_size(void)
{
	page_size = sysconf(_SC_PAGESIZE);
}

static uint64_t load(uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static long sweep(int pidfd, uint64_t start, uint64_t end, __u32 flags,
		  struct touched_range *vec, __u64 vec_len, __u64 *walk_end)
{
	struct touched_sweep_args args = {
		.size = sizeof(args),
		.op = TOUCHED_SWEEP_OP_SWEEP,
		.flags = flags,
		.start = start,
		.end = end,
		.vec = (uintptr_t)vec,
		.vec_len = vec_len,
	};
	long ret = sys_touched_sweep(pidfd, &args);

	*walk_end = args.walk_end;
	return ret;
}

/*
 * true if the kernel has no touched_sweep(): see touched_sweep_helpers.h.
 * Also finds where the sweeps' window ends.
 */
static bool no_syscall_here(void)
{
	int pidfd = sys_pidfd_open(getpid(), 0);
	bool none = pidfd < 0 || !touched_sweep_present(pidfd);

	if (!none)
		window_end = touched_sweep_user_end(pidfd);
	if (pidfd >= 0)
		close(pidfd);
	return none;
}

static int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val) ? 0 : -1;
}

static int write_knob(const char *name, const char *val)
{
	char path[128];

	snprintf(path, sizeof(path), FAIL_DIR "/%s", name);
	return write_file(path, val);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);

	return s && *s ? strtoull(s, NULL, 0) : def;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- The target ------------------------------------------------------ */

static void target_fail(const char *what)
{
	snprintf(sh->why, sizeof(sh->why), "target: %s: %s", what,
		 strerror(errno));
	__atomic_store_n(&sh->failed, 1, __ATOMIC_RELEASE);
	_exit(1);
}

/* Retry @call while it fails with ENOMEM (injected or real). */
#define RETRY_ENOMEM(what, call) do {					\
	int __tries = 0;						\
									\
	while ((call)) {						\
		if (errno != ENOMEM || ++__tries > MAX_RETRIES)		\
			target_fail(what);				\
		__atomic_add_fetch(&sh->enomem, 1, __ATOMIC_RELAXED);	\
	}								\
} while (0)

static int track(void *start, size_t len)
{
	struct touched_sweep_args args = {
		.size = sizeof(args),
		.op = TOUCHED_SWEEP_OP_TRACK,
		.start = (uintptr_t)start,
		.end = (uintptr_t)start + len,
	};

	return sys_touched_sweep(target_pidfd, &args);
}

/*
 * A new mapping over [p, p + len), first written untracked (so that THPs
 * form, for TRACK to split) and then tracked.  Writers are held off, and
 * the dumper copies the region in full once its generation is even again.
 */
static void map_fresh(char *p, size_t len, uint64_t gen)
{
	size_t off;

	RETRY_ENOMEM("mmap", mmap(p, len, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				  -1, 0) == MAP_FAILED);
	madvise(p, len, MADV_HUGEPAGE);
	for (off = 0; off < len; off += page_size)
		*(uint64_t *)(p + off) = 0xf111ULL << 48 | gen << 24 | off / page_size;
	RETRY_ENOMEM("TRACK", track(p, len));
}

static void begin_change(struct region_desc *rd)
{
	store(&rd->gen, rd->gen + 1);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void end_change(struct region_desc *rd)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	store(&rd->gen, rd->gen + 1);
}

/* A random span of whole chunks of the region at @base. */
static void chunk_span(uint64_t *s, char *base, char **p, size_t *len)
{
	unsigned int a = rnd(s) % NR_CHUNKS;
	unsigned int n = 1 + rnd(s) % (NR_CHUNKS - a);

	*p = base + a * CHUNK_SIZE;
	*len = n * CHUNK_SIZE;
}

/* A random span of up to 64 pages of the region at @base. */
static void page_span(uint64_t *s, char *base, char **p, size_t *len)
{
	size_t pages = REGION_SIZE / page_size;
	size_t a = rnd(s) % pages;
	size_t n = 1 + rnd(s) % 64;

	if (n > pages - a)
		n = pages - a;
	*p = base + a * page_size;
	*len = n * page_size;
}

static void op_mremap(struct region_desc *rd)
{
	char *from = (char *)(uintptr_t)rd->addr;
	char *to = (char *)(uintptr_t)(rd->addr == rd->home[0] ?
				       rd->home[1] : rd->home[0]);
	int c;

	/* A region may be several VMAs, whose edges are on the chunk grid. */
	for (c = 0; c < NR_CHUNKS; c++)
		RETRY_ENOMEM("mremap",
			     mremap(from + c * CHUNK_SIZE, CHUNK_SIZE, CHUNK_SIZE,
				    MREMAP_MAYMOVE | MREMAP_FIXED,
				    to + c * CHUNK_SIZE) == MAP_FAILED);
	/* Keep the old home reserved. */
	RETRY_ENOMEM("mmap placeholder",
		     mmap(from, REGION_SIZE, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
			  -1, 0) == MAP_FAILED);
	store(&rd->addr, (uintptr_t)to);
}

static void op_fork(uint64_t *s, char *base)
{
	pid_t pid = fork();
	int i, status;

	if (pid < 0)
		target_fail("fork");
	if (!pid) {
		/* Writes to the child's copy, which the parent never sees. */
		for (i = 0; i < 64; i++)
			((uint64_t *)base)[rnd(s) % (REGION_SIZE / 8)] = 0xc41dULL << 48 | i;
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		target_fail("fork child");
}

static void do_op(int r, enum op_kind kind, uint64_t *s)
{
	struct region_desc *rd = &sh->reg[r];
	char *base = (char *)(uintptr_t)rd->addr;
	struct op_record *h;
	size_t len;
	char *p;
	int i;

	switch (kind) {
	case OP_MPROTECT:
		chunk_span(s, base, &p, &len);
		if (mprotect(p, len, PROT_READ)) {
			if (errno != ENOMEM)
				target_fail("mprotect PROT_READ");
			__atomic_add_fetch(&sh->enomem, 1, __ATOMIC_RELAXED);
		}
		RETRY_ENOMEM("mprotect back", mprotect(p, len, PROT_READ | PROT_WRITE));
		break;
	case OP_REMAP:
		begin_change(rd);
		RETRY_ENOMEM("munmap", munmap(base, REGION_SIZE));
		map_fresh(base, REGION_SIZE, rd->gen);
		end_change(rd);
		break;
	case OP_MAP_OVER:
		chunk_span(s, base, &p, &len);
		begin_change(rd);
		map_fresh(p, len, rd->gen);
		end_change(rd);
		break;
	case OP_MREMAP:
		begin_change(rd);
		op_mremap(rd);
		end_change(rd);
		break;
	case OP_DONTNEED:
	case OP_FREE:
		page_span(s, base, &p, &len);
		if (madvise(p, len, kind == OP_FREE ? MADV_FREE : MADV_DONTNEED))
			target_fail("madvise");
		break;
	case OP_FORK:
		op_fork(s, base);
		break;
	default:
		/* THP advice may split VMAs and fail; MADV_COLLAPSE must fail. */
		chunk_span(s, base, &p, &len);
		madvise(p, len, rnd(s) & 1 ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		if (!(rnd(s) % 4) && !madvise(p, len, MADV_COLLAPSE))
			__atomic_add_fetch(&sh->collapsed, 1, __ATOMIC_RELAXED);
		break;
	}
	h = &rd->hist[rd->nr_hist++ % HISTORY];
	h->kind = kind;
	h->gen = rd->gen;
	for (i = 0; i < NR_WRITERS; i++)
		h->seq[i] = __atomic_load_n(&sh->writes[i], __ATOMIC_RELAXED);
	__atomic_add_fetch(&sh->ops[kind], 1, __ATOMIC_RELAXED);
}

static bool stopping(void)
{
	return __atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE);
}

static void *disturber(void *arg)
{
	uint64_t s = 0x9e3779b97f4a7c15ULL ^ getpid();
	int r;

	while (!stopping()) {
		r = rnd(&s) % NR_REGIONS;
		pthread_rwlock_wrlock(&region_lock[r]);
		do_op(r, rnd(&s) % NR_OPS, &s);
		pthread_rwlock_unlock(&region_lock[r]);
		usleep(DISTURB_US / 2 + rnd(&s) % DISTURB_US);
	}
	return NULL;
}

static void *writer(void *arg)
{
	uint64_t idx = (uintptr_t)arg, seq = 0;
	uint64_t s = (idx + 1) * 0x2545f4914f6cdd1dULL ^ getpid();
	uint64_t *page, *word, r, n, val;
	/* Some bursts write through /proc/self/mem: the kernel's copy. */
	int mem = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	bool by_kernel;
	int i;

	if (mem < 0)
		target_fail("open /proc/self/mem");
	while (!stopping()) {
		for (i = 0; i < 8; i++) {
			/* A burst of 1 to 16 stores into one page. */
			r = rnd(&s) % NR_REGIONS;
			n = 1 + rnd(&s) % 16;
			by_kernel = !(rnd(&s) % 8);
			pthread_rwlock_rdlock(&region_lock[r]);
			page = (uint64_t *)(uintptr_t)sh->reg[r].addr +
			       rnd(&s) % (REGION_SIZE / page_size) * (page_size / 8);
			while (n--) {
				word = page + rnd(&s) % (page_size / 8);
				val = (idx + 1) << 48 | ++seq;
				if (!by_kernel)
					__atomic_store_n(word, val, __ATOMIC_RELAXED);
				else if (pwrite(mem, &val, sizeof(val),
						(uintptr_t)word) != sizeof(val))
					target_fail("write /proc/self/mem");
			}
			pthread_rwlock_unlock(&region_lock[r]);
		}
		__atomic_store_n(&sh->writes[idx], seq, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void target_main(bool inject)
{
	pthread_t writers[NR_WRITERS], dist;
	pthread_rwlockattr_t attr;
	char *reserve, *base;
	uintptr_t i;
	int r;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Threads and children inherit it. */
	if (inject && write_file("/proc/self/make-it-fail", "1"))
		target_fail("make-it-fail");
	target_pidfd = sys_pidfd_open(getpid(), 0);
	if (target_pidfd < 0)
		target_fail("pidfd_open");

	/* Reserve all homes, and the gaps between them, PROT_NONE. */
	reserve = mmap(NULL, 2 * NR_REGIONS * HOME_STRIDE + HOME_ALIGN, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (reserve == MAP_FAILED)
		target_fail("reserve");
	base = (char *)(((uintptr_t)reserve + HOME_ALIGN - 1) & ~(HOME_ALIGN - 1));

	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	for (r = 0; r < NR_REGIONS; r++) {
		struct region_desc *rd = &sh->reg[r];

		rd->home[0] = (uintptr_t)base + 2 * r * HOME_STRIDE;
		rd->home[1] = rd->home[0] + HOME_STRIDE;
		rd->addr = rd->home[0];
		map_fresh((char *)(uintptr_t)rd->addr, REGION_SIZE, 0);
		pthread_rwlock_init(&region_lock[r], &attr);
	}
	__atomic_store_n(&sh->ready, 1, __ATOMIC_RELEASE);

	for (i = 0; i < NR_WRITERS; i++)
		if (pthread_create(&writers[i], NULL, writer, (void *)i))
			target_fail("pthread_create");
	if (pthread_create(&dist, NULL, disturber, NULL))
		target_fail("pthread_create");
	for (i = 0; i < NR_WRITERS; i++)
		pthread_join(writers[i], NULL);
	pthread_join(dist, NULL);

	/* Stopped for the dumper's last round; it kills us afterwards. */
	raise(SIGSTOP);
	for (;;)
		pause();
}

/* ---- The dumper ------------------------------------------------------ */

struct dumper {
	pid_t pid;
	int pidfd;
	char *img[NR_REGIONS];
	bool full[NR_REGIONS];	/* needs a full copy */
	uint64_t sweeps, calls, touched, gone, over, lost, pages, fulls;
	uint64_t stray;		/* TOUCHED ranges outside every home */
	uint64_t enomem;	/* sweeps that failed with ENOMEM */
	uint64_t bad;		/* malformed entries */
	int err;		/* errno of an unexpected failure */
};

/*
 * Copy [addr, end) of the target to @dst, skipping pages that cannot be
 * read.  Returns the number of bytes skipped, or -1 on a failure other
 * than EFAULT.
 */
static long read_target(struct dumper *d, char *dst, uint64_t addr,
			uint64_t end)
{
	long missed = 0;

	while (addr < end) {
		struct iovec local = { dst, end - addr };
		struct iovec remote = { (void *)(uintptr_t)addr, end - addr };
		ssize_t got = process_vm_readv(d->pid, &local, 1, &remote, 1, 0);

		if (got < 0 && errno != EFAULT) {
			d->err = errno;
			return -1;
		}
		if (got <= 0) {
			got = page_size;
			missed += page_size;
		}
		addr += got;
		dst += got;
	}
	return missed;
}

/* Full copy of region @r; the flag stays unless it read a stable region. */
static void full_copy(struct dumper *d, struct shared *s, int r)
{
	struct region_desc *rd = &s->reg[r];
	uint64_t gen = load(&rd->gen), addr;
	long missed;

	if (gen & 1)
		return;
	addr = load(&rd->addr);
	missed = read_target(d, d->img[r], addr, addr + REGION_SIZE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (missed || load(&rd->gen) != gen)
		return;
	d->full[r] = false;
	d->fulls++;
}

/* Does @e overlap a home of region @r? */
static bool in_homes(const struct touched_range *e, struct region_desc *rd)
{
	return (e->start < rd->home[0] + REGION_SIZE && e->end > rd->home[0]) ||
	       (e->start < rd->home[1] + REGION_SIZE && e->end > rd->home[1]);
}

static void handle_range(struct dumper *d, struct shared *s,
			 const struct touched_range *e)
{
	uint64_t lo, hi, addr;
	bool homed = false;
	int r;

	for (r = 0; r < NR_REGIONS; r++)
		homed |= in_homes(e, &s->reg[r]);
	if (e->flags & TOUCHED_RANGE_GONE) {
		d->gone++;
		if (e->start <= s->reg[0].home[0] &&
		    e->end >= s->reg[NR_REGIONS - 1].home[1] + REGION_SIZE)
			d->lost++;
		for (r = 0; r < NR_REGIONS; r++)
			if (in_homes(e, &s->reg[r]))
				d->full[r] = true;
		return;
	}
	d->touched++;
	if (e->flags & TOUCHED_RANGE_OVERREPORTED)
		d->over++;
	if (!homed)
		d->stray++;
	for (r = 0; r < NR_REGIONS; r++) {
		addr = load(&s->reg[r].addr);
		lo = e->start > addr ? e->start : addr;
		hi = e->end < addr + REGION_SIZE ? e->end : addr + REGION_SIZE;
		if (lo >= hi)
			continue;
		/* Pages that went away meanwhile are reported GONE next. */
		read_target(d, d->img[r] + (lo - addr), lo, hi);
		d->pages += (hi - lo) / page_size;
	}
}

static bool entry_ok(const struct touched_range *e, uint64_t prev,
		     uint64_t walk_end)
{
	return e->start >= prev && e->start < e->end && e->end <= walk_end &&
	       !(e->start % page_size) && !(e->end % page_size) &&
	       (e->flags == TOUCHED_RANGE_TOUCHED ||
		e->flags == TOUCHED_RANGE_GONE ||
		e->flags == (TOUCHED_RANGE_TOUCHED | TOUCHED_RANGE_OVERREPORTED));
}

/* One round: a clearing sweep of everything, copies, full copies. */
static int dump_round(struct dumper *d, struct shared *s)
{
	struct touched_range vec[VEC_LEN];
	uint64_t cur = 0, prev;
	__u64 walk_end;
	long n, i;
	int r;

	while (cur < window_end) {
		n = sweep(d->pidfd, cur, window_end, TOUCHED_SWEEP_CLEAR, vec,
			  VEC_LEN, &walk_end);
		d->calls++;
		if (n < 0 && errno == ENOMEM) {
			d->enomem++;
			continue;
		}
		if (n < 0 || n > VEC_LEN || walk_end < cur || walk_end > window_end ||
		    (n < VEC_LEN && walk_end != window_end)) {
			d->err = n < 0 ? errno : EPROTO;
			return -1;
		}
		prev = cur;
		for (i = 0; i < n; i++) {
			if (!entry_ok(&vec[i], prev, walk_end)) {
				d->bad++;
				continue;
			}
			prev = vec[i].end;
			handle_range(d, s, &vec[i]);
		}
		cur = walk_end;
	}
	d->sweeps++;
	for (r = 0; r < NR_REGIONS; r++)
		if (d->full[r])
			full_copy(d, s, r);
	return d->err ? -1 : 0;
}

static void show_history(struct __test_metadata *_metadata,
			 struct region_desc *rd, int r)
{
	uint64_t i = rd->nr_hist > HISTORY ? rd->nr_hist - HISTORY : 0;

	for (; i < rd->nr_hist; i++) {
		struct op_record *h = &rd->hist[i % HISTORY];

		TH_LOG("  region %d op %llu: %s, gen %u, writer seqs %llu/%llu",
		       r, (unsigned long long)i, op_names[h->kind], h->gen,
		       (unsigned long long)h->seq[0],
		       (unsigned long long)h->seq[1]);
	}
}

/* Compare every image with the stopped target: mismatching pages. */
static long compare(struct __test_metadata *_metadata, struct dumper *d,
		    struct shared *s)
{
	char *mem = malloc(REGION_SIZE);
	long bad = 0, bad_before;
	uint64_t addr, off;
	uint64_t *want, *got;
	size_t w;
	int r;

	if (!mem)
		return -1;
	for (r = 0; r < NR_REGIONS; r++) {
		addr = s->reg[r].addr;
		bad_before = bad;
		if (read_target(d, mem, addr, addr + REGION_SIZE)) {
			TH_LOG("region %d at %#llx: cannot read it", r,
			       (unsigned long long)addr);
			bad += REGION_SIZE / page_size;
			continue;
		}
		for (off = 0; off < REGION_SIZE; off += page_size) {
			if (!memcmp(d->img[r] + off, mem + off, page_size))
				continue;
			if (bad++ >= SHOW_MISMATCHES)
				continue;
			want = (uint64_t *)(d->img[r] + off);
			got = (uint64_t *)(mem + off);
			w = 0;
			while (want[w] == got[w])
				w++;
			TH_LOG("lost write? region %d page %#llx word %zu:",
			       r, (unsigned long long)(addr + off), w);
			TH_LOG("  image %#llx, memory %#llx",
			       (unsigned long long)want[w],
			       (unsigned long long)got[w]);
		}
		if (bad != bad_before)
			show_history(_metadata, &s->reg[r], r);
	}
	free(mem);
	return bad;
}

/* What became of the target, for failure messages. */
static const char *target_state(struct dumper *d, struct shared *s)
{
	static char buf[256];
	int status;

	if (waitpid(d->pid, &status, WNOHANG | WUNTRACED) != d->pid)
		snprintf(buf, sizeof(buf), "target %d alive; %s", d->pid, s->why);
	else if (WIFSIGNALED(status))
		snprintf(buf, sizeof(buf), "target killed by signal %d; %s",
			 WTERMSIG(status), s->why);
	else
		snprintf(buf, sizeof(buf), "target status %#x; %s", status, s->why);
	return buf;
}

/* ---- The test -------------------------------------------------------- */

FIXTURE(stress)
{
	struct shared *sh;
	struct dumper d;
	bool knob_set;
};

FIXTURE_VARIANT(stress)
{
	bool inject;
	int divisor;
};

FIXTURE_VARIANT_ADD(stress, plain)
{
	.inject = false,
	.divisor = 1,
};

FIXTURE_VARIANT_ADD(stress, fault_injection)
{
	.inject = true,
	.divisor = 4,
};

FIXTURE_SETUP(stress)
{
	int r;

	if (no_syscall_here())
		SKIP(return, "touched_sweep() not supported");
	if (variant->inject && access(FAIL_DIR, F_OK))
		SKIP(return, "no " FAIL_DIR);
	self->sh = mmap(NULL, sizeof(*self->sh), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->sh);
	for (r = 0; r < NR_REGIONS; r++) {
		self->d.img[r] = calloc(1, REGION_SIZE);
		ASSERT_NE(NULL, self->d.img[r]);
		self->d.full[r] = true;
	}
	self->d.pidfd = -1;
}

FIXTURE_TEARDOWN(stress)
{
	if (self->d.pid > 0) {
		kill(self->d.pid, SIGKILL);
		waitpid(self->d.pid, NULL, 0);
	}
	if (self->knob_set)
		write_knob("probability", "0");
}

static void log_summary(struct __test_metadata *_metadata, struct dumper *d,
			struct shared *s, double secs, long mismatches)
{
	unsigned long long writes = 0;
	char msg[640];
	int i, n;

	for (i = 0; i < NR_WRITERS; i++)
		writes += s->writes[i];
	n = snprintf(msg, sizeof(msg), "%llu writes, %llu sweeps (%llu calls), ",
		     writes, (unsigned long long)d->sweeps,
		     (unsigned long long)d->calls);
	n += snprintf(msg + n, sizeof(msg) - n, "ranges %llu touched/%llu gone/",
		      (unsigned long long)d->touched, (unsigned long long)d->gone);
	n += snprintf(msg + n, sizeof(msg) - n, "%llu overreported, ",
		      (unsigned long long)d->over);
	n += snprintf(msg + n, sizeof(msg) - n, "%llu pages copied, %llu full copies, ops",
		      (unsigned long long)d->pages, (unsigned long long)d->fulls);
	for (i = 0; i < NR_OPS; i++)
		n += snprintf(msg + n, sizeof(msg) - n, " %s %llu", op_names[i],
			      (unsigned long long)s->ops[i]);
	n += snprintf(msg + n, sizeof(msg) - n, ", ENOMEM target %llu sweep %llu, ",
		      (unsigned long long)s->enomem, (unsigned long long)d->enomem);
	n += snprintf(msg + n, sizeof(msg) - n, "whole-window GONE %llu, ",
		      (unsigned long long)d->lost);
	snprintf(msg + n, sizeof(msg) - n, "%.1f s, %ld mismatches", secs, mismatches);
	ksft_print_msg("%s\n", msg);
}

TEST_F_TIMEOUT(stress, no_write_lost, 6 * 3600)
{
	uint64_t want_writes, want_secs, want_sweeps, writes, last_writes = 0;
	struct dumper *d = &self->d;
	struct shared *s = self->sh;
	double t0, t, last_progress;
	bool all_ops;
	long mismatches;
	int i, status;

	want_writes = env_u64("TOUCHED_SWEEP_STRESS_WRITES", 1000000) / variant->divisor;
	want_secs = env_u64("TOUCHED_SWEEP_STRESS_SECONDS", 0) / variant->divisor;
	want_sweeps = MIN_SWEEPS / variant->divisor;

	if (variant->inject) {
		self->knob_set = true;
		ASSERT_EQ(0, write_knob("verbose", "0"));
		ASSERT_EQ(0, write_knob("task-filter", "Y"));
		ASSERT_EQ(0, write_knob("interval", "1"));
		ASSERT_EQ(0, write_knob("times", "-1"));
		ASSERT_EQ(0, write_knob("probability", "5"));
		ASSERT_EQ(0, write_file("/proc/self/make-it-fail", "1"));
	}

	sh = s;
	d->pid = fork();
	ASSERT_LE(0, d->pid);
	if (!d->pid)
		target_main(variant->inject);
	d->pidfd = sys_pidfd_open(d->pid, 0);
	ASSERT_LE(0, d->pidfd);

	t0 = now();
	while (!__atomic_load_n(&s->ready, __ATOMIC_ACQUIRE) &&
	       !__atomic_load_n(&s->failed, __ATOMIC_ACQUIRE) && now() - t0 < 300 &&
	       !kill(d->pid, 0))
		usleep(10000);
	ASSERT_EQ(1, s->ready) TH_LOG("%s", target_state(d, s));

	t0 = now();
	last_progress = t0;
	for (;;) {
		ASSERT_EQ(0, __atomic_load_n(&s->failed, __ATOMIC_ACQUIRE))
			TH_LOG("%s", s->why);
		ASSERT_EQ(0, dump_round(d, s)) {
			TH_LOG("sweep or copy failed: %s", strerror(d->err));
			TH_LOG("%s", target_state(d, s));
		}
		t = now();
		for (writes = 0, i = 0; i < NR_WRITERS; i++)
			writes += __atomic_load_n(&s->writes[i], __ATOMIC_RELAXED);
		if (writes != last_writes) {
			last_writes = writes;
			last_progress = t;
		}
		ASSERT_GT(120, t - last_progress) TH_LOG("writers stalled");
		for (all_ops = d->gone, i = 0; i < NR_OPS; i++)
			all_ops &= __atomic_load_n(&s->ops[i], __ATOMIC_RELAXED) > 0;
		if (writes >= want_writes && t - t0 >= want_secs &&
		    d->sweeps >= want_sweeps && (all_ops || t - t0 >= want_secs + 600))
			break;
	}

	/* Stop the target and run the last round on the stopped process. */
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	ASSERT_EQ(d->pid, waitpid(d->pid, &status, WUNTRACED));
	ASSERT_TRUE(WIFSTOPPED(status))
		TH_LOG("target status %#x: %s", status, s->why);
	ASSERT_EQ(0, dump_round(d, s))
		TH_LOG("last sweep or copy failed: %s", strerror(d->err));
	for (i = 0; i < NR_REGIONS; i++)
		ASSERT_FALSE(d->full[i]) TH_LOG("region %d not copied in full", i);
	if (variant->inject) {
		write_knob("probability", "0");
		self->knob_set = false;
	}

	mismatches = compare(_metadata, d, s);
	log_summary(_metadata, d, s, now() - t0, mismatches);
	EXPECT_EQ(0, mismatches);
	EXPECT_EQ(0, d->bad);
	EXPECT_EQ(0, d->stray);
	EXPECT_EQ(0, s->collapsed);
	EXPECT_LE(want_writes, writes);
	EXPECT_LE(want_sweeps, d->sweeps);
	EXPECT_LT(0, d->gone);
	for (i = 0; i < NR_OPS; i++)
		EXPECT_LT(0, s->ops[i]) TH_LOG("no op %d", i);
	if (variant->inject)
		EXPECT_LT(0, s->enomem + d->enomem);
}

TEST_HARNESS_MAIN
