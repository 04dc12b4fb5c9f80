// SPDX-License-Identifier: GPL-2.0
/*
 * Semantics of the touched_sweep(2) tracking core: what marks a page, what
 * does not, and how tracking follows VMAs through their life.
 *
 * Every test checks both sides of the contract: the pages written are
 * reported, and the pages not written are not.  Tests that need something
 * the kernel or the machine may lack (hugetlb pages, swap, a second NUMA
 * node, gup_test, userfaultfd) SKIP without it.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
/* <linux/fs.h>, which <linux/io_uring.h> includes, defines these again. */
#undef RWF_HIPRI
#undef RWF_DSYNC
#undef RWF_SYNC
#undef RWF_NOWAIT
#undef RWF_APPEND
#undef RWF_NOAPPEND
#include <linux/io_uring.h>
#include <linux/userfaultfd.h>
#include <linux/touched_sweep.h>

#include "../kselftest_harness.h"
#include "touched_sweep_helpers.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE 0x2
#endif

/*
 * Newer uAPI than the headers this may be built against: userfaultfd's
 * MOVE and POISON (6.8) and gup_test's longterm pin (mm/gup_test.h, which
 * is not exported).  Same layouts, hence same ioctl numbers.
 */
struct ts_uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
	__u64 mode;
	__s64 move;
};

#define TS_UFFD_FEATURE_POISON	0x4000
#define TS_UFFD_FEATURE_MOVE	0x10000
#define TS_UFFDIO_MOVE		_IOWR(UFFDIO, 0x05, struct ts_uffdio_move)

struct ts_uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};

#define TS_UFFDIO_POISON	_IOWR(UFFDIO, 0x08, struct ts_uffdio_poison)

struct ts_pin_longterm_test {
	__u64 addr;
	__u64 size;
	__u32 flags;
};

#define TS_PIN_LONGTERM_TEST_START	_IOW('g', 7, struct ts_pin_longterm_test)
#define TS_PIN_LONGTERM_TEST_STOP	_IO('g', 8)
#define TS_PIN_LONGTERM_FLAG_USE_WRITE	1

#define GUP_TEST_PATH	"/sys/kernel/debug/gup_test"
#define THP_ENABLED	"/sys/kernel/mm/transparent_hugepage/enabled"
#define NR_HUGEPAGES	"/proc/sys/vm/nr_hugepages"
#define ZRAM_SYSFS	"/sys/block/zram0"
#define ZRAM_DEV	"/dev/zram0"

/* Sweep flags and range flags, short enough for tables of expectations. */
#define PEEK		0U			/* test only */
#define CLEAR		TOUCHED_SWEEP_CLEAR	/* test and clear */
#define TOUCHED		TOUCHED_RANGE_TOUCHED
#define GONE		TOUCHED_RANGE_GONE
#define OVER		(TOUCHED_RANGE_TOUCHED | TOUCHED_RANGE_OVERREPORTED)

static size_t page_size;
/* The end of a window covering every user address. */
static void *addr_space_end;
#define ADDR_SPACE_END	addr_space_end
/* The size a PMD maps: 2 MiB with 4 KiB pages, 32 MiB with 16 KiB pages. */
static size_t thp_size;
#define THP_SIZE	thp_size
#define THP_PMD_SIZE	"/sys/kernel/mm/transparent_hugepage/hpage_pmd_size"

static void __attribute__((constructor)) init_globals(void)
{
	int pidfd = sys_pidfd_open(getpid(), 0);
	FILE *f = fopen(THP_PMD_SIZE, "r");

	page_size = sysconf(_SC_PAGESIZE);
	/* Without THP: a page table page's worth of 8-byte entries. */
	thp_size = page_size / 8 * page_size;
	if (f) {
		if (fscanf(f, "%zu", &thp_size) != 1)
			thp_size = page_size / 8 * page_size;
		fclose(f);
	}
	addr_space_end = (void *)(uintptr_t)touched_sweep_user_end(pidfd);
	if (pidfd >= 0)
		close(pidfd);
}

/* Address of page @n of the area at @base. */
#define PG(base, n)	((char *)(base) + (size_t)(n) * page_size)

/* The call fails with @err, and nothing else. */
#define EXPECT_ERRNO(err, call) do {					\
	errno = 0;							\
	EXPECT_EQ(-1, (call));						\
	EXPECT_EQ(err, errno) {						\
		TH_LOG("errno %d (%s)", errno, strerror(errno));	\
	}								\
} while (0)

/* Thin wrappers: the tests want the raw system call and errno. */
static long sys_move_pages(int count, void **pages, const int *nodes,
			   int *status, int flags)
{
	return syscall(__NR_move_pages, 0, count, pages, nodes, status, flags);
}

static void init_args(struct touched_sweep_args *args, __u32 op,
		      const void *start, const void *end)
{
	memset(args, 0, sizeof(*args));
	args->size = sizeof(*args);
	args->op = op;
	args->start = (uintptr_t)start;
	args->end = (uintptr_t)end;
}

/* Opt [start, start + len) of the process behind @pidfd in: 0 or -1. */
static int track(int pidfd, const void *start, size_t len)
{
	struct touched_sweep_args args;

	init_args(&args, TOUCHED_SWEEP_OP_TRACK, start, (const char *)start + len);
	return sys_touched_sweep(pidfd, &args);
}

/* Opt [start, start + len) out: 0 or -1. */
static int untrack(int pidfd, const void *start, size_t len)
{
	struct touched_sweep_args args;

	init_args(&args, TOUCHED_SWEEP_OP_UNTRACK, start, (const char *)start + len);
	return sys_touched_sweep(pidfd, &args);
}

/* One sweep call: the number of entries stored in @vec, or -1. */
static long sweep(int pidfd, const void *start, const void *end, __u32 flags,
		  struct touched_range *vec, __u64 vec_len, __u64 *walk_end)
{
	struct touched_sweep_args args;
	long ret;

	init_args(&args, TOUCHED_SWEEP_OP_SWEEP, start, end);
	args.flags = flags;
	args.vec = (uintptr_t)vec;
	args.vec_len = vec_len;
	ret = sys_touched_sweep(pidfd, &args);
	if (walk_end)
		*walk_end = args.walk_end;
	return ret;
}

/* true if the kernel has no touched_sweep(): see touched_sweep_helpers.h */
static bool no_syscall(int pidfd)
{
	return !touched_sweep_present(pidfd);
}

/* no_syscall() for tests that have no pidfd of their own yet. */
static bool no_syscall_here(void)
{
	int pidfd = sys_pidfd_open(getpid(), 0);
	bool none = pidfd < 0 || no_syscall(pidfd);

	if (pidfd >= 0)
		close(pidfd);
	return none;
}

#define CHUNK	64

static bool valid_flags(__u64 flags, __u32 sflags)
{
	if (flags == TOUCHED || flags == GONE)
		return true;
	/* OVERREPORTED comes only from clearing sweeps. */
	return flags == OVER && (sflags & CLEAR);
}

/*
 * Sweep all of [start, end), at most @chunk entries per call, resuming at
 * walk_end, and store the entries in @out (room for @max).  Checks what
 * every answer must satisfy: entries sorted, disjoint, page aligned, inside
 * the part of the window the call covered, with a valid flag combination,
 * and coalesced within the call.  The spec promises coalescing within one
 * call only, so entries of two calls that meet with equal flags are merged
 * here.  Returns the number of entries.
 */
static int collect(struct __test_metadata *_metadata, int pidfd,
		   const void *start, const void *end, __u32 sflags,
		   struct touched_range *out, int max, unsigned int chunk)
{
	struct touched_range vec[CHUNK];
	__u64 cur = (uintptr_t)start, stop = (uintptr_t)end;
	__u64 prev_end = cur, walk_end;
	int n = 0, calls = 0;
	long ret, i;

	ASSERT_GE(CHUNK, chunk);
	do {
		ret = sweep(pidfd, (void *)(uintptr_t)cur, end, sflags, vec, chunk,
			    &walk_end);
		ASSERT_LE(0, ret) {
			TH_LOG("sweep [%#llx, %#llx): %s", cur, stop, strerror(errno));
		}
		ASSERT_GE(chunk, ret);
		ASSERT_LE(cur, walk_end);
		ASSERT_GE(stop, walk_end);
		/* With room left, the only reason to stop is the window's end. */
		if ((unsigned long)ret < chunk)
			ASSERT_EQ(stop, walk_end);
		for (i = 0; i < ret; i++) {
			struct touched_range *r = &vec[i];

			ASSERT_TRUE(r->start >= prev_end && r->start < r->end &&
				    r->end <= walk_end &&
				    !(r->start % page_size) && !(r->end % page_size) &&
				    valid_flags(r->flags, sflags)) {
				TH_LOG("bad entry [%#llx, %#llx) flags %#llx",
				       r->start, r->end, r->flags);
				TH_LOG("after %#llx, walk_end %#llx", prev_end, walk_end);
			}
			if (i && r->start == vec[i - 1].end)
				ASSERT_NE(vec[i - 1].flags, r->flags) {
					TH_LOG("entries at %#llx not coalesced", r->start);
				}
			prev_end = r->end;
			if (n && out[n - 1].end == r->start &&
			    out[n - 1].flags == r->flags) {
				out[n - 1].end = r->end;
				continue;
			}
			ASSERT_GT(max, n);
			out[n++] = *r;
		}
		cur = walk_end;
		ASSERT_GT(100000, ++calls);
	} while (cur != stop);
	return n;
}

/* A range of pages [first, last) relative to a window's start. */
struct pr {
	long first;
	long last;
	__u64 flags;
};

#define MAX_PR	512

/* collect() over @npages pages at @base, in page numbers. */
static int sweep_pages(struct __test_metadata *_metadata, int pidfd,
		       const void *base, long npages, __u32 sflags,
		       struct pr *out, int max)
{
	struct touched_range *r = calloc(max, sizeof(*r));
	int i, n;

	ASSERT_NE(NULL, r);
	n = collect(_metadata, pidfd, base, PG(base, npages), sflags, r, max, CHUNK);
	for (i = 0; i < n; i++) {
		out[i].first = (r[i].start - (uintptr_t)base) / page_size;
		out[i].last = (r[i].end - (uintptr_t)base) / page_size;
		out[i].flags = r[i].flags;
	}
	free(r);
	return n;
}

static void dump_pr(struct __test_metadata *_metadata, const char *what,
		    const struct pr *p, int n)
{
	int i;

	TH_LOG("%s: %d entries", what, n);
	for (i = 0; i < n; i++)
		TH_LOG("    pages [%ld, %ld) flags %#llx", p[i].first, p[i].last,
		       (unsigned long long)p[i].flags);
}

/*
 * The sweep of @npages pages at @base reports exactly @exp.  On a mismatch,
 * log both lists with the caller's line and fail without stopping.
 */
static bool expect_pages(struct __test_metadata *_metadata, int line,
			 int pidfd, const void *base, long npages, __u32 sflags,
			 const struct pr *exp, int nexp)
{
	struct pr got[MAX_PR];
	bool same;
	int i, n;

	n = sweep_pages(_metadata, pidfd, base, npages, sflags, got, MAX_PR);
	same = n == nexp;
	for (i = 0; same && i < n; i++)
		same = got[i].first == exp[i].first && got[i].last == exp[i].last &&
		       got[i].flags == exp[i].flags;
	if (!same) {
		TH_LOG("line %d: %s sweep of %ld pages at %p:", line,
		       sflags & CLEAR ? "clearing" : "test-only", npages, base);
		dump_pr(_metadata, "expected", exp, nexp);
		dump_pr(_metadata, "got", got, n);
	}
	EXPECT_TRUE(same);
	return same;
}

#define EXPECT_PAGES(pidfd, base, npages, sflags, ...)			\
	expect_pages(_metadata, __LINE__, pidfd, base, npages, sflags,	\
		     (const struct pr[]){ __VA_ARGS__ },		\
		     sizeof((const struct pr[]){ __VA_ARGS__ }) / sizeof(struct pr))

#define EXPECT_NONE(pidfd, base, npages, sflags)			\
	expect_pages(_metadata, __LINE__, pidfd, base, npages, sflags, NULL, 0)

/* The same, for a sorted list of single pages that all carry @flags. */
static bool expect_page_list(struct __test_metadata *_metadata, int line,
			     int pidfd, const void *base, long npages,
			     __u32 sflags, const long *pages, int n, __u64 flags)
{
	struct pr exp[MAX_PR];
	int i, nexp = 0;

	for (i = 0; i < n; i++) {
		if (nexp && exp[nexp - 1].last == pages[i]) {
			exp[nexp - 1].last++;
			continue;
		}
		exp[nexp].first = pages[i];
		exp[nexp].last = pages[i] + 1;
		exp[nexp].flags = flags;
		nexp++;
	}
	return expect_pages(_metadata, line, pidfd, base, npages, sflags, exp, nexp);
}

#define EXPECT_PAGE_LIST(pidfd, base, npages, sflags, pages, n)	\
	expect_page_list(_metadata, __LINE__, pidfd, base, npages, sflags, \
			 pages, n, TOUCHED)

static char *map_anon(long npages)
{
	char *p = mmap(NULL, npages * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* @npages of a fresh memfd, mapped shared; its fd in @fd. */
static char *map_memfd(long npages, int *fd)
{
	char *p;

	*fd = memfd_create("touched_sweep", MFD_CLOEXEC);
	if (*fd < 0)
		return NULL;
	p = MAP_FAILED;
	if (!ftruncate(*fd, npages * page_size))
		p = mmap(NULL, npages * page_size, PROT_READ | PROT_WRITE,
			 MAP_SHARED, *fd, 0);
	if (p == MAP_FAILED) {
		close(*fd);
		return NULL;
	}
	return p;
}

/* @len bytes at an @align-aligned address, so that THPs can back them. */
static char *map_anon_aligned(size_t len, size_t align)
{
	char *p = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	if (a > p)
		munmap(p, a - p);
	if (p + align > a)
		munmap(a + len, p + align - a);
	return a;
}

/* Accesses the compiler may not drop or merge (relaxed atomics). */
static char read_page(const void *base, long n)
{
	return __atomic_load_n(PG(base, n), __ATOMIC_RELAXED);
}

static void read_pages(const void *base, long first, long last)
{
	long i;

	for (i = first; i < last; i++)
		read_page(base, i);
}

static void write_page(void *base, long n, char val)
{
	__atomic_store_n(PG(base, n), val, __ATOMIC_RELAXED);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

static int write_file(const char *path, const char *str)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, str, strlen(str));
	close(fd);
	return n == (ssize_t)strlen(str) ? 0 : -1;
}

/*
 * /proc/self/maps: the number of VMAs overlapping [start, end), and
 * whether a VMA begins at @addr.  They show where TRACK split VMAs.
 */
static int count_vmas(const void *start, const void *end)
{
	unsigned long s, e, lo = (uintptr_t)start, hi = (uintptr_t)end;
	FILE *f = fopen("/proc/self/maps", "re");
	char *line = NULL;
	size_t cap = 0;
	int n = 0;

	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0)
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s < hi && e > lo)
			n++;
	free(line);
	fclose(f);
	return n;
}

static bool vma_starts_at(const void *addr)
{
	return count_vmas(addr, (const char *)addr + 1) == 1 &&
	       count_vmas((const char *)addr - 1, (const char *)addr + 1) == 2;
}

/* The bounds of the VMA whose maps line ends with @name, e.g. "[stack]". */
static int find_named_vma(const char *name, unsigned long *start, unsigned long *end)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char *line = NULL;
	size_t cap = 0;
	int ret = -1;

	if (!f)
		return -1;
	while (ret && getline(&line, &cap, f) > 0)
		if (strstr(line, name) && sscanf(line, "%lx-%lx", start, end) == 2)
			ret = 0;
	free(line);
	fclose(f);
	return ret;
}

/* kB of PMD-mapped anonymous THP in the VMAs overlapping [start, end). */
static long anon_huge_kb(const void *start, const void *end)
{
	unsigned long s, e, lo = (uintptr_t)start, hi = (uintptr_t)end;
	FILE *f = fopen("/proc/self/smaps", "re");
	char *line = NULL;
	size_t cap = 0;
	bool in = false;
	long kb, total = 0;

	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2)
			in = s < hi && e > lo;
		else if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			total += kb;
	}
	free(line);
	fclose(f);
	return total;
}

/* /proc/self/pagemap entries of @n pages at @base (bit 62 swapped, 63 present). */
static int read_pagemap(const void *base, long n, uint64_t *ent)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	ssize_t len = n * sizeof(*ent);
	bool ok;

	if (fd < 0)
		return -1;
	ok = pread(fd, ent, len, (uintptr_t)base / page_size * sizeof(*ent)) == len;
	close(fd);
	return ok ? 0 : -1;
}

#define PM_SWAP		0x4000000000000000ULL
#define PM_PRESENT	0x8000000000000000ULL

/*
 * A forked target, for tests about another process.  It inherits the
 * layout, so an address in the parent names the same memory in the child.
 * It runs one-letter commands from a pipe and acknowledges each.  It never
 * uses the harness: an ASSERT there would longjmp into the harness state.
 * Both pipes are close-on-exec, so an exec shows as EOF on the ack pipe.
 */
struct child {
	pid_t pid;
	int pidfd;
	int cmd;
	int ack;
};

struct child_cmd {
	char op;
	long page;
};

#define CHILD_FILL	0x22	/* 'f': what the child fills its buffer with */
#define CHILD_WRITE	0x77	/* 'w': what the child writes to a page */

static void child_loop(int cmd, int ack, char *buf, long npages)
{
	struct child_cmd c;
	ssize_t n;
	char r;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (;;) {
		n = read(cmd, &c, sizeof(c));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != sizeof(c))
			_exit(0);
		r = 'k';
		switch (c.op) {
		case 'f':
			memset(buf, CHILD_FILL, npages * page_size);
			break;
		case 'w':
			write_page(buf, c.page, CHILD_WRITE);
			break;
		case 'x':
			execl("/bin/sleep", "sleep", "30", (char *)NULL);
			r = 'e';
			break;
		case 'q':
			_exit(0);
		default:
			r = '?';
		}
		if (write(ack, &r, 1) != 1)
			_exit(1);
	}
}

static int start_child(struct child *c, char *buf, long npages)
{
	int to[2], from[2];

	c->pid = -1;
	c->pidfd = -1;
	if (pipe2(to, O_CLOEXEC))
		return -1;
	if (pipe2(from, O_CLOEXEC))
		return -1;
	c->pid = fork();
	if (c->pid < 0)
		return -1;
	if (!c->pid) {
		close(to[1]);
		close(from[0]);
		child_loop(to[0], from[1], buf, npages);
	}
	close(to[0]);
	close(from[1]);
	c->cmd = to[1];
	c->ack = from[0];
	c->pidfd = sys_pidfd_open(c->pid, 0);
	return c->pidfd < 0 ? -1 : 0;
}

/* Run @op on @page in the child: its ack, or 0 once it is gone or exec'd. */
static char child_do(struct child *c, char op, long page)
{
	struct child_cmd cmd;
	char r;

	memset(&cmd, 0, sizeof(cmd));
	cmd.op = op;
	cmd.page = page;
	if (write(c->cmd, &cmd, sizeof(cmd)) != sizeof(cmd))
		return 0;
	if (read(c->ack, &r, 1) != 1)
		return 0;
	return r;
}

static void stop_child(struct child *c)
{
	if (c->pid <= 0)
		return;
	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
	close(c->cmd);
	close(c->ack);
	if (c->pidfd >= 0)
		close(c->pidfd);
	c->pid = 0;
}

/* A userfaultfd with @features, or -1 if not permitted or not offered. */
static int uffd_open(__u64 features)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd;

	fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -1;
	if (ioctl(fd, UFFDIO_API, &api)) {
		close(fd);
		return -1;
	}
	if (!features)
		return fd;
	/* UFFDIO_API works once per file: ask again with the features. */
	close(fd);
	if ((api.features & features) != features)
		return -1;
	fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -1;
	api.api = UFFD_API;
	api.features = features;
	if (ioctl(fd, UFFDIO_API, &api)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int uffd_register(int fd, void *start, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)start, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	return ioctl(fd, UFFDIO_REGISTER, &reg);
}

static int uffd_copy(int fd, void *dst, const void *src)
{
	struct uffdio_copy copy = {
		.dst = (uintptr_t)dst,
		.src = (uintptr_t)src,
		.len = page_size,
	};

	if (ioctl(fd, UFFDIO_COPY, &copy))
		return -1;
	return copy.copy == (__s64)page_size ? 0 : -1;
}

static int uffd_move(int fd, void *dst, void *src)
{
	struct ts_uffdio_move move = {
		.dst = (uintptr_t)dst,
		.src = (uintptr_t)src,
		.len = page_size,
	};

	return ioctl(fd, TS_UFFDIO_MOVE, &move);
}

/*
 * Swap on zram0, set up here when the machine has no swap (and taken down
 * again by the caller with drop_zram_swap()), so that swap-in gets tested.
 */
static bool swap_active(void)
{
	char buf[512];

	/* /proc/swaps has a header line, then one line per swap area. */
	return !read_file("/proc/swaps", buf, sizeof(buf)) && strchr(buf, '\n') &&
	       strchr(buf, '\n')[1] != '\0';
}

static void drop_zram_swap(void)
{
	swapoff(ZRAM_DEV);
	write_file(ZRAM_SYSFS "/reset", "1");
}

static int setup_zram_swap(void)
{
	const size_t size = 64UL << 20;
	char buf[64], *hdr;
	int fd, ret = -1;

	if (read_file(ZRAM_SYSFS "/disksize", buf, sizeof(buf)) || atol(buf))
		return -1;
	if (write_file(ZRAM_SYSFS "/disksize", "64M"))
		return -1;
	fd = open(ZRAM_DEV, O_WRONLY | O_CLOEXEC);
	hdr = calloc(1, page_size);
	if (fd >= 0 && hdr) {
		/* union swap_header: version 1, last page, no bad pages. */
		*(__u32 *)(hdr + 1024) = 1;
		*(__u32 *)(hdr + 1028) = size / page_size - 1;
		memcpy(hdr + page_size - 10, "SWAPSPACE2", 10);
		if (pwrite(fd, hdr, page_size, 0) == (ssize_t)page_size && !fsync(fd))
			ret = swapon(ZRAM_DEV, 0);
	}
	free(hdr);
	if (fd >= 0)
		close(fd);
	if (ret)
		write_file(ZRAM_SYSFS "/reset", "1");
	return ret;
}

/*
 * Most tests work on their own process, named by a pidfd of self.  The
 * harness runs each test in a fresh child, so nothing tracked leaks from
 * one test into the next.
 */
FIXTURE(ts)
{
	int pidfd;
};

FIXTURE_SETUP(ts)
{
	self->pidfd = sys_pidfd_open(getpid(), 0);
	ASSERT_GE(self->pidfd, 0);
	if (no_syscall(self->pidfd))
		SKIP(return, "touched_sweep() not supported");
}

FIXTURE_TEARDOWN(ts)
{
	close(self->pidfd);
}

/* ---- TRACK ---------------------------------------------------------- */

TEST_F(ts, track_splits_vmas_at_edges)
{
	char *buf = map_anon(10);

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 10 * page_size);
	ASSERT_EQ(1, count_vmas(buf, PG(buf, 10)));

	ASSERT_EQ(0, track(self->pidfd, PG(buf, 3), 4 * page_size));
	EXPECT_EQ(3, count_vmas(buf, PG(buf, 10)));
	EXPECT_TRUE(vma_starts_at(PG(buf, 3)));
	EXPECT_TRUE(vma_starts_at(PG(buf, 7)));

	/* Only the tracked part reports. */
	write_page(buf, 2, 2);
	write_page(buf, 4, 2);
	write_page(buf, 7, 2);
	EXPECT_PAGES(self->pidfd, buf, 10, PEEK, { 4, 5, TOUCHED });

	/*
	 * Tracking a larger range keeps the marks of the part already
	 * tracked; pages 2 and 7, written while untracked, start clean.
	 */
	ASSERT_EQ(0, track(self->pidfd, PG(buf, 2), 6 * page_size));
	EXPECT_TRUE(vma_starts_at(PG(buf, 2)));
	EXPECT_TRUE(vma_starts_at(PG(buf, 8)));
	EXPECT_PAGES(self->pidfd, buf, 10, PEEK, { 4, 5, TOUCHED });
	write_page(buf, 2, 3);
	write_page(buf, 7, 3);
	EXPECT_PAGES(self->pidfd, buf, 10, CLEAR,
		     { 2, 3, TOUCHED }, { 4, 5, TOUCHED }, { 7, 8, TOUCHED });

	/* An empty range is a no-op. */
	ASSERT_EQ(0, track(self->pidfd, PG(buf, 9), 0));
	EXPECT_FALSE(vma_starts_at(PG(buf, 9)));
	write_page(buf, 9, 3);
	EXPECT_NONE(self->pidfd, buf, 10, PEEK);
}

TEST_F(ts, track_hole_enomem_changes_nothing)
{
	char *buf = map_anon(10);
	int before;

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 10 * page_size);
	ASSERT_EQ(0, munmap(PG(buf, 5), page_size));
	before = count_vmas(buf, PG(buf, 10));

	EXPECT_ERRNO(ENOMEM, track(self->pidfd, PG(buf, 2), 6 * page_size));
	EXPECT_EQ(before, count_vmas(buf, PG(buf, 10)));
	EXPECT_FALSE(vma_starts_at(PG(buf, 2)));
	EXPECT_FALSE(vma_starts_at(PG(buf, 8)));
	write_page(buf, 2, 2);
	write_page(buf, 7, 2);
	EXPECT_NONE(self->pidfd, buf, 10, PEEK);

	/* The same range without the hole is fine. */
	ASSERT_EQ(0, track(self->pidfd, PG(buf, 2), 3 * page_size));
	write_page(buf, 3, 3);
	write_page(buf, 7, 3);
	EXPECT_PAGES(self->pidfd, buf, 10, PEEK, { 3, 4, TOUCHED });
}

TEST_F(ts, track_main_stack_einval)
{
	unsigned long start, end, page;
	char local = 0;
	int before;

	ASSERT_EQ(0, find_named_vma("[stack]", &start, &end));
	page = (uintptr_t)&local & ~(page_size - 1);
	ASSERT_TRUE(page >= start && page < end);
	before = count_vmas((void *)start, (void *)end);

	/* VM_GROWSDOWN, as a whole or in part. */
	EXPECT_ERRNO(EINVAL, track(self->pidfd, (void *)start, end - start));
	EXPECT_ERRNO(EINVAL, track(self->pidfd, (void *)page, page_size));
	EXPECT_EQ(before, count_vmas((void *)start, (void *)end));
	EXPECT_NONE(self->pidfd, (void *)start, (end - start) / page_size, PEEK);
}

TEST_F(ts, track_hugetlb_einval)
{
	const size_t len = 2UL << 20;
	char old[32];
	char *p;

	if (read_file(NR_HUGEPAGES, old, sizeof(old)))
		SKIP(return, "no " NR_HUGEPAGES);
	if (atol(old) < 4 && write_file(NR_HUGEPAGES, "4"))
		SKIP(return, "cannot reserve hugetlb pages");
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p == MAP_FAILED) {
		write_file(NR_HUGEPAGES, old);
		SKIP(return, "no hugetlb page available");
	}
	memset(p, 1, len);

	EXPECT_ERRNO(EINVAL, track(self->pidfd, p, len));
	p[0] = 2;
	EXPECT_NONE(self->pidfd, p, len / page_size, PEEK);

	munmap(p, len);
	write_file(NR_HUGEPAGES, old);
}

/* ---- What marks a page, and what does not --------------------------- */

TEST_F(ts, pages_start_clean)
{
	char *buf = map_anon(16);

	ASSERT_NE(NULL, buf);
	/* Present, dirty, writable before tracking... */
	memset(buf, 1, 16 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 16 * page_size));
	/* ...and clean after. */
	EXPECT_NONE(self->pidfd, buf, 16, PEEK);
	EXPECT_NONE(self->pidfd, buf, 16, CLEAR);
	write_page(buf, 3, 2);
	EXPECT_PAGES(self->pidfd, buf, 16, CLEAR, { 3, 4, TOUCHED });
}

TEST_F(ts, first_touch_and_reads)
{
	char *buf = map_anon(16);

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, track(self->pidfd, buf, 16 * page_size));

	/* Reads map the zero page and mark nothing. */
	read_pages(buf, 0, 8);
	EXPECT_NONE(self->pidfd, buf, 16, PEEK);

	/* A write after a read, and a first touch of a never-faulted page. */
	write_page(buf, 3, 1);
	write_page(buf, 10, 1);
	EXPECT_PAGES(self->pidfd, buf, 16, PEEK, { 3, 4, TOUCHED }, { 10, 11, TOUCHED });
	EXPECT_PAGES(self->pidfd, buf, 16, CLEAR, { 3, 4, TOUCHED }, { 10, 11, TOUCHED });

	read_pages(buf, 0, 16);
	EXPECT_NONE(self->pidfd, buf, 16, PEEK);
	EXPECT_EQ(1, read_page(buf, 3));
	EXPECT_EQ(0, read_page(buf, 4));
}

TEST_F(ts, anon_write_fault_reuse)
{
	char *buf = map_anon(8);

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 8 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));

	/* Exclusive anonymous pages are reused, not copied. */
	write_page(buf, 1, 2);
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 1, 2, TOUCHED });
	/* The clearing sweep made it read-only again: the next write marks. */
	write_page(buf, 1, 3);
	write_page(buf, 1, 4);
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 1, 2, TOUCHED });
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);
	EXPECT_EQ(4, read_page(buf, 1));
}

TEST_F(ts, fork_cow_parent_reported_child_not)
{
	char *buf = map_anon(8);
	struct child c;

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 8 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	ASSERT_EQ(0, start_child(&c, buf, 8));

	/* The pages are shared with the child: this write copies. */
	write_page(buf, 3, 2);
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 3, 4, TOUCHED });

	/* The child's writes are its own. */
	ASSERT_EQ('k', child_do(&c, 'w', 2));
	ASSERT_EQ('k', child_do(&c, 'w', 5));
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 3, 4, TOUCHED });
	EXPECT_EQ(1, read_page(buf, 2));

	stop_child(&c);
	write_page(buf, 2, 3);
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 2, 4, TOUCHED });
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);
	EXPECT_EQ(1, read_page(buf, 5));
}

/* Page-cache and shmem backed mappings, and a private file mapping. */
enum { SH_ANON, SH_MEMFD, SH_FILE, PRIV_FILE };

#define SH_PAGES 32

FIXTURE(shared)
{
	int pidfd;
	int fd;
	char *buf;
};

FIXTURE_VARIANT(shared)
{
	int kind;
};

FIXTURE_VARIANT_ADD(shared, shared_anon)
{
	.kind = SH_ANON,
};

FIXTURE_VARIANT_ADD(shared, memfd)
{
	.kind = SH_MEMFD,
};

FIXTURE_VARIANT_ADD(shared, tmp_file)
{
	.kind = SH_FILE,
};

FIXTURE_VARIANT_ADD(shared, private_file)
{
	.kind = PRIV_FILE,
};

FIXTURE_SETUP(shared)
{
	size_t len = SH_PAGES * page_size;
	char path[] = "/tmp/touched_sweep.XXXXXX";
	int flags = MAP_SHARED;
	char *data;

	self->fd = -1;
	self->buf = NULL;
	self->pidfd = sys_pidfd_open(getpid(), 0);
	ASSERT_GE(self->pidfd, 0);
	if (no_syscall(self->pidfd))
		SKIP(return, "touched_sweep() not supported");

	switch (variant->kind) {
	case SH_ANON:
		flags |= MAP_ANONYMOUS;
		break;
	case SH_MEMFD:
		self->fd = memfd_create("touched_sweep", MFD_CLOEXEC);
		ASSERT_LE(0, self->fd);
		break;
	case SH_FILE:
	case PRIV_FILE:
		if (variant->kind == PRIV_FILE)
			flags = MAP_PRIVATE;
		self->fd = mkstemp(path);
		ASSERT_LE(0, self->fd);
		unlink(path);
		break;
	}
	if (self->fd >= 0) {
		/* Cached contents, so that read faults map around. */
		data = malloc(len);
		ASSERT_NE(NULL, data);
		memset(data, 0x33, len);
		ASSERT_EQ((ssize_t)len, pwrite(self->fd, data, len, 0));
		free(data);
	}
	self->buf = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, self->fd, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
}

FIXTURE_TEARDOWN(shared)
{
	if (self->buf && self->buf != MAP_FAILED)
		munmap(self->buf, SH_PAGES * page_size);
	if (self->fd >= 0)
		close(self->fd);
	close(self->pidfd);
}

TEST_F(shared, write_faults_reported_reads_not)
{
	uint64_t pm[SH_PAGES];
	int i, present = 0;

	ASSERT_EQ(0, track(self->pidfd, self->buf, SH_PAGES * page_size));

	/* Read faults, with fault-around over the cached pages. */
	read_page(self->buf, 0);
	read_page(self->buf, 20);
	if (!read_pagemap(self->buf, SH_PAGES, pm))
		for (i = 0; i < SH_PAGES; i++)
			present += !!(pm[i] & PM_PRESENT);
	TH_LOG("%d of %d pages mapped by two read faults", present, SH_PAGES);
	EXPECT_NONE(self->pidfd, self->buf, SH_PAGES, PEEK);

	write_page(self->buf, 2, 1);
	write_page(self->buf, 25, 1);
	write_page(self->buf, 31, 1);
	EXPECT_PAGES(self->pidfd, self->buf, SH_PAGES, PEEK,
		     { 2, 3, TOUCHED }, { 25, 26, TOUCHED }, { 31, 32, TOUCHED });
	EXPECT_PAGES(self->pidfd, self->buf, SH_PAGES, CLEAR,
		     { 2, 3, TOUCHED }, { 25, 26, TOUCHED }, { 31, 32, TOUCHED });

	read_pages(self->buf, 0, SH_PAGES);
	EXPECT_NONE(self->pidfd, self->buf, SH_PAGES, PEEK);

	/* Again on a page that is now mapped read-only. */
	write_page(self->buf, 2, 2);
	EXPECT_PAGES(self->pidfd, self->buf, SH_PAGES, CLEAR, { 2, 3, TOUCHED });
	EXPECT_EQ(2, read_page(self->buf, 2));
	EXPECT_EQ(variant->kind == SH_ANON ? 0 : 0x33, read_page(self->buf, 3));
}

TEST_F(shared, populated_pages_start_clean)
{
	memset(self->buf, 5, SH_PAGES * page_size);
	ASSERT_EQ(0, track(self->pidfd, self->buf, SH_PAGES * page_size));
	EXPECT_NONE(self->pidfd, self->buf, SH_PAGES, PEEK);
	write_page(self->buf, 7, 6);
	EXPECT_PAGES(self->pidfd, self->buf, SH_PAGES, CLEAR, { 7, 8, TOUCHED });
	EXPECT_NONE(self->pidfd, self->buf, SH_PAGES, PEEK);
}

TEST_F(shared, mprotect_roundtrip_not_reported)
{
	size_t len = SH_PAGES * page_size;

	memset(self->buf, 5, len);
	ASSERT_EQ(0, track(self->pidfd, self->buf, len));
	ASSERT_EQ(0, mprotect(self->buf, len, PROT_READ));
	ASSERT_EQ(0, mprotect(self->buf, len, PROT_READ | PROT_WRITE));
	EXPECT_NONE(self->pidfd, self->buf, SH_PAGES, PEEK);
	write_page(self->buf, 9, 6);
	EXPECT_PAGES(self->pidfd, self->buf, SH_PAGES, PEEK, { 9, 10, TOUCHED });
}

/* ---- THP ------------------------------------------------------------ */

FIXTURE(thp)
{
	int pidfd;
	char saved[32];
};

FIXTURE_VARIANT(thp)
{
	const char *mode;
};

FIXTURE_VARIANT_ADD(thp, always)
{
	.mode = "always",
};

FIXTURE_VARIANT_ADD(thp, never)
{
	.mode = "never",
};

FIXTURE_SETUP(thp)
{
	char buf[128], *lb, *rb;

	self->saved[0] = '\0';
	self->pidfd = sys_pidfd_open(getpid(), 0);
	ASSERT_GE(self->pidfd, 0);
	if (no_syscall(self->pidfd))
		SKIP(return, "touched_sweep() not supported");
	if (read_file(THP_ENABLED, buf, sizeof(buf)))
		SKIP(return, "no THP");
	/* "always [madvise] never": the current mode is bracketed. */
	lb = strchr(buf, '[');
	rb = lb ? strchr(lb, ']') : NULL;
	ASSERT_NE(NULL, rb);
	*rb = '\0';
	snprintf(self->saved, sizeof(self->saved), "%s", lb + 1);
	if (write_file(THP_ENABLED, variant->mode)) {
		self->saved[0] = '\0';
		SKIP(return, "cannot set THP to %s", variant->mode);
	}
}

FIXTURE_TEARDOWN(thp)
{
	if (self->saved[0])
		write_file(THP_ENABLED, self->saved);
	close(self->pidfd);
}

TEST_F(thp, scattered_writes_page_precise)
{
	const long n = 2 * THP_SIZE / page_size;
	const long pages[] = { 5, n / 2 + 77, n - 3 };
	char *buf = map_anon_aligned(2 * THP_SIZE, THP_SIZE);

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 2 * THP_SIZE);
	TH_LOG("THP %s: %ld kB PMD-mapped before tracking", variant->mode,
	       anon_huge_kb(buf, buf + 2 * THP_SIZE));

	ASSERT_EQ(0, track(self->pidfd, buf, 2 * THP_SIZE));
	/* Tracked VMAs hold no PMD-mapped THP. */
	EXPECT_EQ(0, anon_huge_kb(buf, buf + 2 * THP_SIZE));
	EXPECT_NONE(self->pidfd, buf, n, PEEK);

	write_page(buf, pages[0], 2);
	write_page(buf, pages[1], 2);
	write_page(buf, pages[2], 2);
	EXPECT_PAGE_LIST(self->pidfd, buf, n, PEEK, pages, 3);
	EXPECT_PAGE_LIST(self->pidfd, buf, n, CLEAR, pages, 3);
	read_pages(buf, 0, n);
	EXPECT_NONE(self->pidfd, buf, n, PEEK);
	EXPECT_EQ(2, read_page(buf, pages[1]));
	EXPECT_EQ(1, read_page(buf, pages[1] + 1));
}

TEST_F(thp, fresh_faults_page_precise)
{
	const long n = THP_SIZE / page_size;
	char *buf = map_anon_aligned(THP_SIZE, THP_SIZE);

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, track(self->pidfd, buf, THP_SIZE));
	/* A first write in a tracked VMA must not fault in a whole THP. */
	write_page(buf, 10, 1);
	write_page(buf, 11, 1);
	write_page(buf, n - 5, 1);
	EXPECT_EQ(0, anon_huge_kb(buf, buf + THP_SIZE));
	EXPECT_PAGES(self->pidfd, buf, n, CLEAR, { 10, 12, TOUCHED }, { n - 5, n - 4, TOUCHED });
	EXPECT_NONE(self->pidfd, buf, n, PEEK);
}

TEST_F(ts, madv_collapse_refused)
{
	const long n = THP_SIZE / page_size;
	char *plain = map_anon_aligned(THP_SIZE, THP_SIZE);
	char *tracked = map_anon_aligned(THP_SIZE, THP_SIZE);

	if (access(THP_ENABLED, F_OK))
		SKIP(return, "no THP");
	ASSERT_NE(NULL, plain);
	ASSERT_NE(NULL, tracked);
	memset(plain, 1, THP_SIZE);
	memset(tracked, 1, THP_SIZE);

	/* What an untracked range says; EINVAL there tells us nothing. */
	if (madvise(plain, THP_SIZE, MADV_COLLAPSE) && errno == EINVAL)
		SKIP(return, "MADV_COLLAPSE not usable here");

	ASSERT_EQ(0, track(self->pidfd, tracked, THP_SIZE));
	EXPECT_ERRNO(EINVAL, madvise(tracked, THP_SIZE, MADV_COLLAPSE));
	EXPECT_EQ(0, anon_huge_kb(tracked, tracked + THP_SIZE));
	write_page(tracked, 7, 2);
	EXPECT_PAGES(self->pidfd, tracked, n, PEEK, { 7, 8, TOUCHED });
}

/* ---- Swap, mprotect, NUMA migration --------------------------------- */

FIXTURE(swap)
{
	int pidfd;
	bool own_zram;
};

FIXTURE_SETUP(swap)
{
	self->own_zram = false;
	self->pidfd = sys_pidfd_open(getpid(), 0);
	ASSERT_GE(self->pidfd, 0);
	if (no_syscall(self->pidfd))
		SKIP(return, "touched_sweep() not supported");
	if (swap_active())
		return;
	if (setup_zram_swap())
		SKIP(return, "no swap, and no swap on zram0 could be set up");
	self->own_zram = true;
}

FIXTURE_TEARDOWN(swap)
{
	if (self->own_zram)
		drop_zram_swap();
	close(self->pidfd);
}

TEST_F(swap, swap_in_not_reported)
{
	const long n = 16;
	char *buf = map_anon(n);
	uint64_t pm[16];
	long swapped[16], ns = 0, i, w;
	long written[2];

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, track(self->pidfd, buf, n * page_size));
	for (i = 0; i < n; i++)
		memset(PG(buf, i), i + 1, page_size);
	EXPECT_PAGES(self->pidfd, buf, n, CLEAR, { 0, n, TOUCHED });

	ASSERT_EQ(0, madvise(buf, n * page_size, MADV_PAGEOUT));
	ASSERT_EQ(0, read_pagemap(buf, n, pm));
	for (i = 0; i < n; i++)
		if (pm[i] & PM_SWAP)
			swapped[ns++] = i;
	TH_LOG("%ld of %ld pages swapped out", ns, n);
	if (!ns)
		SKIP(return, "MADV_PAGEOUT swapped nothing out");
	EXPECT_NONE(self->pidfd, buf, n, PEEK);

	/* Swap in by reading, all but the last swapped page. */
	w = swapped[ns - 1];
	for (i = 0; i < n; i++)
		if (i != w)
			EXPECT_EQ(i + 1, read_page(buf, i));
	EXPECT_NONE(self->pidfd, buf, n, PEEK);

	/* A write after a read swap-in, and a write that swaps in. */
	written[0] = swapped[0];
	written[1] = w;
	write_page(buf, written[0], 0x40);
	if (w != written[0])
		write_page(buf, w, 0x40);
	EXPECT_PAGE_LIST(self->pidfd, buf, n, CLEAR, written, w != written[0] ? 2 : 1);
	EXPECT_NONE(self->pidfd, buf, n, PEEK);
	EXPECT_EQ(w + 1, PG(buf, w)[1]);
}

TEST_F(ts, mprotect_upgrade_not_reported)
{
	char *buf = map_anon(8);

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	memset(buf, 1, 8 * page_size);
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 0, 8, TOUCHED });

	/* RW -> RO -> RW must not make clean pages writable. */
	ASSERT_EQ(0, mprotect(buf, 8 * page_size, PROT_READ));
	ASSERT_EQ(0, mprotect(buf, 8 * page_size, PROT_READ | PROT_WRITE));
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);
	write_page(buf, 3, 2);
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 3, 4, TOUCHED });

	/* The same on a sub-range, through PROT_NONE. */
	ASSERT_EQ(0, mprotect(PG(buf, 2), 3 * page_size, PROT_NONE));
	ASSERT_EQ(0, mprotect(PG(buf, 2), 3 * page_size, PROT_READ | PROT_WRITE));
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);
	write_page(buf, 4, 2);
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 4, 5, TOUCHED });
}

TEST_F(ts, numa_migration_not_reported)
{
	const int n = 8;
	int nodes[8], status[8], i, moved = 0;
	void *pages[8];
	char *buf;
	long ret;

	if (access("/sys/devices/system/node/node1", F_OK))
		SKIP(return, "needs two NUMA nodes");
	buf = map_anon(n);
	ASSERT_NE(NULL, buf);
	memset(buf, 1, n * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, n * page_size));
	write_page(buf, 6, 2);

	for (i = 0; i < n; i++)
		pages[i] = PG(buf, i);
	ASSERT_EQ(0, sys_move_pages(n, pages, NULL, status, 0));
	for (i = 0; i < n; i++) {
		ASSERT_LE(0, status[i]);
		nodes[i] = status[i] ? 0 : 1;
	}
	ret = sys_move_pages(n, pages, nodes, status, MPOL_MF_MOVE);
	ASSERT_LE(0, ret) {
		TH_LOG("move_pages: %s", strerror(errno));
	}
	for (i = 0; i < n; i++)
		moved += status[i] == nodes[i];
	TH_LOG("%d of %d pages migrated", moved, n);
	if (!moved)
		SKIP(return, "no page migrated");

	/* The mark of page 6 followed it; the clean pages stayed clean. */
	EXPECT_PAGES(self->pidfd, buf, n, CLEAR, { 6, 7, TOUCHED });
	EXPECT_NONE(self->pidfd, buf, n, PEEK);
	EXPECT_EQ(1, read_page(buf, 2));
	EXPECT_EQ(2, read_page(buf, 6));
	write_page(buf, 2, 3);
	EXPECT_PAGES(self->pidfd, buf, n, PEEK, { 2, 3, TOUCHED });
}

/* ---- userfaultfd ---------------------------------------------------- */

TEST_F(ts, uffd_copy_reported_zeropage_not)
{
	struct uffdio_zeropage zero = { .range = { .len = page_size } };
	struct ts_uffdio_poison poison = { .range = { .len = page_size } };
	char *buf = map_anon(8), *src = map_anon(1);
	int uffd, probe;
	bool has_poison;

	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, src);
	memset(src, 0x5a, page_size);
	probe = uffd_open(TS_UFFD_FEATURE_POISON);
	has_poison = probe >= 0;
	uffd = has_poison ? probe : uffd_open(0);
	if (uffd < 0)
		SKIP(return, "userfaultfd not permitted");
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	ASSERT_EQ(0, uffd_register(uffd, buf, 8 * page_size));

	/* No faulting thread is needed to fill a missing page. */
	ASSERT_EQ(0, uffd_copy(uffd, PG(buf, 1), src));
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 1, 2, TOUCHED });

	zero.range.start = (uintptr_t)PG(buf, 3);
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_ZEROPAGE, &zero));
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 1, 2, TOUCHED });

	if (has_poison) {
		poison.range.start = (uintptr_t)PG(buf, 5);
		ASSERT_EQ(0, ioctl(uffd, TS_UFFDIO_POISON, &poison));
		EXPECT_PAGES(self->pidfd, buf, 8, CLEAR,
			     { 1, 2, TOUCHED }, { 5, 6, TOUCHED });
	} else {
		TH_LOG("no UFFDIO_POISON, not tested");
		EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 1, 2, TOUCHED });
	}

	/* Touch only the filled pages: the others would wait for a handler. */
	EXPECT_EQ(0x5a, read_page(buf, 1));
	EXPECT_EQ(0, read_page(buf, 3));
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);
	write_page(buf, 3, 1);
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 3, 4, TOUCHED });
	close(uffd);
}

TEST_F(ts, uffd_move_refused)
{
	char *src = map_anon(1), *plain = map_anon(2), *tracked = map_anon(2);
	char *fill = map_anon(1);
	int uffd;

	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, plain);
	ASSERT_NE(NULL, tracked);
	ASSERT_NE(NULL, fill);
	uffd = uffd_open(TS_UFFD_FEATURE_MOVE);
	if (uffd < 0)
		SKIP(return, "no userfaultfd with UFFDIO_MOVE");
	ASSERT_EQ(0, uffd_register(uffd, plain, 2 * page_size));
	ASSERT_EQ(0, track(self->pidfd, tracked, 2 * page_size));
	ASSERT_EQ(0, uffd_register(uffd, tracked, 2 * page_size));

	/* Into an untracked VMA it works... */
	memset(src, 1, page_size);
	ASSERT_EQ(0, uffd_move(uffd, plain, src)) {
		TH_LOG("UFFDIO_MOVE: %s", strerror(errno));
	}
	/* ...into a tracked one it does not... */
	memset(src, 2, page_size);
	EXPECT_ERRNO(EINVAL, uffd_move(uffd, tracked, src));
	/* ...nor out of one. */
	memset(fill, 3, page_size);
	ASSERT_EQ(0, uffd_copy(uffd, PG(tracked, 1), fill));
	EXPECT_ERRNO(EINVAL, uffd_move(uffd, PG(plain, 1), PG(tracked, 1)));

	EXPECT_PAGES(self->pidfd, tracked, 2, PEEK, { 1, 2, TOUCHED });
	EXPECT_EQ(1, read_page(plain, 0));
	EXPECT_EQ(3, read_page(tracked, 1));
	close(uffd);
}

/* ---- Writes by the kernel on a process's behalf --------------------- */

#define REMOTE_PAGES 12

/* A child target whose buffer the parent tracks through its pidfd. */
FIXTURE(remote)
{
	struct child c;
	char *buf;
};

FIXTURE_SETUP(remote)
{
	int pidfd;

	self->c.pid = 0;
	pidfd = sys_pidfd_open(getpid(), 0);
	ASSERT_GE(pidfd, 0);
	if (no_syscall(pidfd))
		SKIP(return, "touched_sweep() not supported");
	close(pidfd);

	self->buf = map_anon(REMOTE_PAGES);
	ASSERT_NE(NULL, self->buf);
	memset(self->buf, 1, REMOTE_PAGES * page_size);
	ASSERT_EQ(0, start_child(&self->c, self->buf, REMOTE_PAGES));
	/* The child's own pages, written before tracking. */
	ASSERT_EQ('k', child_do(&self->c, 'f', 0));
	ASSERT_EQ(0, track(self->c.pidfd, self->buf, REMOTE_PAGES * page_size));
	EXPECT_NONE(self->c.pidfd, self->buf, REMOTE_PAGES, PEEK);
}

FIXTURE_TEARDOWN(remote)
{
	stop_child(&self->c);
}

/* The byte at @addr in process @pid, read with process_vm_readv(). */
static char remote_byte(pid_t pid, void *addr)
{
	struct iovec local, rem;
	char b = 0;

	local.iov_base = &b;
	local.iov_len = 1;
	rem.iov_base = addr;
	rem.iov_len = 1;
	if (process_vm_readv(pid, &local, 1, &rem, 1, 0) != 1)
		return -1;
	return b;
}

TEST_F(remote, own_stores_reported)
{
	ASSERT_EQ('k', child_do(&self->c, 'w', 3));
	ASSERT_EQ('k', child_do(&self->c, 'w', 4));
	EXPECT_PAGES(self->c.pidfd, self->buf, REMOTE_PAGES, CLEAR, { 3, 5, TOUCHED });
	EXPECT_NONE(self->c.pidfd, self->buf, REMOTE_PAGES, PEEK);
}

TEST_F(remote, remote_reads_not_reported)
{
	char data[64], path[64];
	struct iovec local = { data, sizeof(data) };
	struct iovec rem = { PG(self->buf, 2), sizeof(data) };
	int fd;

	ASSERT_EQ((ssize_t)sizeof(data), process_vm_readv(self->c.pid, &local, 1, &rem, 1, 0));
	snprintf(path, sizeof(path), "/proc/%d/mem", self->c.pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)sizeof(data),
		  pread(fd, data, sizeof(data), (uintptr_t)PG(self->buf, 5)));
	close(fd);
	EXPECT_EQ(CHILD_FILL, data[0]);
	EXPECT_NONE(self->c.pidfd, self->buf, REMOTE_PAGES, PEEK);
}

TEST_F(remote, process_vm_writev_reported)
{
	char data[100];
	struct iovec local = { data, sizeof(data) };
	struct iovec rem = { PG(self->buf, 1) + 10, sizeof(data) };

	memset(data, 0x44, sizeof(data));
	ASSERT_EQ((ssize_t)sizeof(data),
		  process_vm_writev(self->c.pid, &local, 1, &rem, 1, 0));
	EXPECT_PAGES(self->c.pidfd, self->buf, REMOTE_PAGES, CLEAR, { 1, 2, TOUCHED });
	EXPECT_NONE(self->c.pidfd, self->buf, REMOTE_PAGES, PEEK);
	EXPECT_EQ(0x44, remote_byte(self->c.pid, PG(self->buf, 1) + 10));
}

TEST_F(remote, proc_pid_mem_write_reported)
{
	char data[16], path[64];
	int fd;

	/* 16 bytes across the boundary of pages 4 and 5. */
	memset(data, 0x45, sizeof(data));
	snprintf(path, sizeof(path), "/proc/%d/mem", self->c.pid);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)sizeof(data),
		  pwrite(fd, data, sizeof(data), (uintptr_t)PG(self->buf, 5) - 8));
	close(fd);
	EXPECT_PAGES(self->c.pidfd, self->buf, REMOTE_PAGES, CLEAR, { 4, 6, TOUCHED });
	EXPECT_NONE(self->c.pidfd, self->buf, REMOTE_PAGES, PEEK);
	EXPECT_EQ(0x45, remote_byte(self->c.pid, PG(self->buf, 5)));
}

TEST_F(remote, ptrace_pokedata_reported)
{
	char *addr = PG(self->buf, 7) + 64;
	int status;

	ASSERT_EQ(0, ptrace(PTRACE_ATTACH, self->c.pid, NULL, NULL));
	ASSERT_EQ(self->c.pid, waitpid(self->c.pid, &status, 0));
	ASSERT_TRUE(WIFSTOPPED(status));
	ASSERT_EQ(0, ptrace(PTRACE_POKEDATA, self->c.pid, addr, (void *)0x4646464646464646UL));
	ASSERT_EQ(0, ptrace(PTRACE_DETACH, self->c.pid, NULL, NULL));

	EXPECT_PAGES(self->c.pidfd, self->buf, REMOTE_PAGES, CLEAR, { 7, 8, TOUCHED });
	EXPECT_NONE(self->c.pidfd, self->buf, REMOTE_PAGES, PEEK);
	EXPECT_EQ(0x46, remote_byte(self->c.pid, addr));
	/* Still alive and obeying after the detach. */
	ASSERT_EQ('k', child_do(&self->c, 'w', 9));
	EXPECT_PAGES(self->c.pidfd, self->buf, REMOTE_PAGES, PEEK, { 9, 10, TOUCHED });
}

TEST_F(ts, pipe_read_into_buffer_reported)
{
	const size_t len = 6000, off = 2 * page_size + 100;
	char *buf = map_anon(8), *data = malloc(len);
	int p[2];

	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, data);
	memset(buf, 1, 8 * page_size);
	memset(data, 0x47, len);
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ((ssize_t)len, write(p[1], data, len));
	ASSERT_EQ((ssize_t)len, read(p[0], buf + off, len));

	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR,
		     { off / page_size, (off + len - 1) / page_size + 1, TOUCHED });
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);
	EXPECT_EQ(0x47, buf[off]);
	close(p[0]);
	close(p[1]);
	free(data);
}

/* ---- Content changes without a write -------------------------------- */

TEST_F(ts, zap_madv_dontneed)
{
	char *buf = map_anon(8);

	ASSERT_NE(NULL, buf);
	/* Pages 6 and 7 never get a page-table entry. */
	memset(buf, 1, 6 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	read_page(buf, 2);
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);

	ASSERT_EQ(0, madvise(PG(buf, 2), 6 * page_size, MADV_DONTNEED));
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 2, 6, TOUCHED });
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 2, 6, TOUCHED });
	EXPECT_EQ(0, read_page(buf, 3));
	EXPECT_EQ(1, read_page(buf, 1));
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);
}

TEST_F(ts, zap_madv_free)
{
	char *buf = map_anon(8);

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 8 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	read_page(buf, 2);
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);

	/*
	 * Lazily freed pages may be dropped by reclaim without a fault: they
	 * are reported, and kept, by every clearing sweep.  This holds at
	 * once, before the LRU batch that makes them lazily freed drains.
	 */
	ASSERT_EQ(0, madvise(PG(buf, 2), 2 * page_size, MADV_FREE));
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 2, 4, TOUCHED });
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 2, 4, OVER });
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 2, 4, OVER });

	/* A write ends it: reclaim keeps a page whose entry is dirty. */
	write_page(buf, 2, 2);
	write_page(buf, 0, 2);
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 0, 1, TOUCHED },
		     { 2, 3, TOUCHED }, { 3, 4, OVER });
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 3, 4, OVER });
	EXPECT_EQ(2, read_page(buf, 2));
}

TEST_F(ts, zap_madv_remove_memfd)
{
	char *buf;
	int fd;

	buf = map_memfd(8, &fd);
	ASSERT_NE(NULL, buf);
	memset(buf, 1, 8 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	read_page(buf, 2);
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);

	ASSERT_EQ(0, madvise(PG(buf, 2), 2 * page_size, MADV_REMOVE));
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 2, 4, TOUCHED });
	EXPECT_EQ(0, read_page(buf, 2));
	EXPECT_EQ(1, read_page(buf, 4));
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);
	close(fd);
}

TEST_F(ts, zap_punch_hole_memfd)
{
	char *buf;
	int fd;

	buf = map_memfd(8, &fd);
	ASSERT_NE(NULL, buf);
	/* Pages 6 and 7 are never mapped here (write faults map no more). */
	memset(buf, 1, 6 * page_size);
	ASSERT_EQ(2 * page_size, pwrite(fd, PG(buf, 0), 2 * page_size,
					6 * page_size));
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	read_page(buf, 5);
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);

	/* Pages 6 and 7 had data in the file: they read zero now. */
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			       4 * page_size, 4 * page_size));
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 4, 8, TOUCHED });
	EXPECT_EQ(0, read_page(buf, 5));
	EXPECT_EQ(1, read_page(buf, 3));
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);
	close(fd);
}

TEST_F(ts, zap_truncate_memfd)
{
	char *buf;
	int fd;

	buf = map_memfd(8, &fd);
	ASSERT_NE(NULL, buf);
	memset(buf, 1, 8 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);

	/* Pages 5 to 7 now lie past the end of the file: do not touch them. */
	ASSERT_EQ(0, ftruncate(fd, 5 * page_size));
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 5, 8, TOUCHED });
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);
	EXPECT_EQ(1, read_page(buf, 4));
	close(fd);
}

/*
 * Truncation and hole punching that end inside a page zero the rest of it
 * in place: the page stays mapped, and no entry changes.
 */
TEST_F(ts, partial_punch_hole_memfd)
{
	char *buf;
	int fd;

	buf = map_memfd(2, &fd);
	ASSERT_NE(NULL, buf);
	memset(buf, 1, 2 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 2 * page_size));
	EXPECT_NONE(self->pidfd, buf, 2, PEEK);

	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			       page_size + 100, 200));
	EXPECT_EQ(0, buf[page_size + 100]);
	EXPECT_EQ(1, buf[page_size + 300]);
	EXPECT_PAGES(self->pidfd, buf, 2, CLEAR, { 1, 2, TOUCHED });
	EXPECT_NONE(self->pidfd, buf, 2, PEEK);
	close(fd);
}

TEST_F(ts, partial_truncate_memfd)
{
	char *buf;
	int fd;

	buf = map_memfd(2, &fd);
	ASSERT_NE(NULL, buf);
	memset(buf, 1, 2 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 2 * page_size));
	EXPECT_NONE(self->pidfd, buf, 2, PEEK);

	/* Shrink into page 1 and grow back: its tail reads zero. */
	ASSERT_EQ(0, ftruncate(fd, page_size + 100));
	ASSERT_EQ(0, ftruncate(fd, 2 * page_size));
	EXPECT_EQ(1, buf[page_size + 99]);
	EXPECT_EQ(0, buf[page_size + 100]);
	EXPECT_PAGES(self->pidfd, buf, 2, CLEAR, { 1, 2, TOUCHED });
	EXPECT_NONE(self->pidfd, buf, 2, PEEK);
	close(fd);
}

/* A page this mapping no longer maps still shows the hole punched in it. */
TEST_F(ts, punch_hole_over_unmapped_page)
{
	char *buf;
	int fd;

	buf = map_memfd(4, &fd);
	ASSERT_NE(NULL, buf);
	memset(buf, 1, 4 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 4 * page_size));
	/* Drop this mapping's entry of page 2; the page cache keeps it. */
	ASSERT_EQ(0, madvise(PG(buf, 2), page_size, MADV_DONTNEED));
	EXPECT_PAGES(self->pidfd, buf, 4, CLEAR, { 2, 3, TOUCHED });
	EXPECT_EQ(1, read_page(buf, 2));
	ASSERT_EQ(0, madvise(PG(buf, 2), page_size, MADV_DONTNEED));
	EXPECT_PAGES(self->pidfd, buf, 4, CLEAR, { 2, 3, TOUCHED });

	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			       2 * page_size, page_size));
	EXPECT_PAGES(self->pidfd, buf, 4, CLEAR, { 2, 3, TOUCHED });
	EXPECT_EQ(0, read_page(buf, 2));
	close(fd);
}

/* ---- Pinned pages --------------------------------------------------- */

/* Pin @page of @buf for writing, long term, through the gup_test module. */
static void pin_page(struct __test_metadata *_metadata, int gup_fd, char *buf,
		     int page)
{
	struct ts_pin_longterm_test pin = {
		.addr = (uintptr_t)PG(buf, page),
		.size = page_size,
		.flags = TS_PIN_LONGTERM_FLAG_USE_WRITE,
	};

	ASSERT_EQ(0, ioctl(gup_fd, TS_PIN_LONGTERM_TEST_START, &pin)) {
		TH_LOG("PIN_LONGTERM_TEST_START: %s", strerror(errno));
	}
}

/*
 * After a pin of pages [@first, @last) is dropped, the next clearing sweep
 * reports at most those pages, touched, and the one after nothing.
 */
static void expect_unpinned_then_none(struct __test_metadata *_metadata,
				      int pidfd, char *buf, int npages,
				      int first, int last)
{
	struct pr got[MAX_PR];
	int i, n;

	n = sweep_pages(_metadata, pidfd, buf, npages, CLEAR, got, MAX_PR);
	for (i = 0; i < n; i++)
		EXPECT_TRUE(got[i].first == first && got[i].last == last &&
			    (got[i].flags & TOUCHED));
	EXPECT_NONE(pidfd, buf, npages, CLEAR);
}

/* Drop the pin of pin_page(), then expect_unpinned_then_none(). */
static void unpin_expect_page_then_none(struct __test_metadata *_metadata,
					int gup_fd, int pidfd, char *buf,
					int npages, int page)
{
	ASSERT_EQ(0, ioctl(gup_fd, TS_PIN_LONGTERM_TEST_STOP));
	expect_unpinned_then_none(_metadata, pidfd, buf, npages, page,
				  page + 1);
}

TEST_F(ts, pinned_page_overreported)
{
	char *buf;
	int fd;

	fd = open(GUP_TEST_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		SKIP(return, "no " GUP_TEST_PATH);
	buf = map_anon(8);
	ASSERT_NE(NULL, buf);
	memset(buf, 1, 8 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	write_page(buf, 3, 2);
	write_page(buf, 5, 2);
	pin_page(_metadata, fd, buf, 3);

	/* A pinned page cannot be cleared: every clearing sweep says so. */
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 3, 4, TOUCHED }, { 5, 6, TOUCHED });
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 3, 4, OVER }, { 5, 6, TOUCHED });
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 3, 4, OVER });
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 3, 4, TOUCHED });

	unpin_expect_page_then_none(_metadata, fd, self->pidfd, buf, 8, 3);
	close(fd);
}

/* A pin taken before tracking started: the page is written through it. */
TEST_F(ts, pinned_before_track_reported)
{
	char *buf;
	int fd;

	fd = open(GUP_TEST_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		SKIP(return, "no " GUP_TEST_PATH);
	buf = map_anon(8);
	ASSERT_NE(NULL, buf);
	memset(buf, 1, 8 * page_size);
	pin_page(_metadata, fd, buf, 3);

	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 3, 4, TOUCHED });
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 3, 4, OVER });
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 3, 4, OVER });

	/* Untracking and tracking again must not forget the pin either. */
	ASSERT_EQ(0, untrack(self->pidfd, buf, 8 * page_size));
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 3, 4, OVER });

	unpin_expect_page_then_none(_metadata, fd, self->pidfd, buf, 8, 3);
	close(fd);
}

/*
 * A pinned page of a shared mapping that loses this mapping's entry stays
 * in the page cache, and the pin still writes it: its next fault maps what
 * was written.
 */
TEST_F(ts, pinned_shared_page_without_entry_reported)
{
	int fd, memfd;
	char *buf;

	fd = open(GUP_TEST_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		SKIP(return, "no " GUP_TEST_PATH);
	buf = map_memfd(8, &memfd);
	ASSERT_NE(NULL, buf);
	memset(buf, 1, 8 * page_size);
	pin_page(_metadata, fd, buf, 2);

	/* Pinned and unmapped before tracking starts. */
	ASSERT_EQ(0, madvise(PG(buf, 2), page_size, MADV_DONTNEED));
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 2, 3, OVER });

	/* Unmapped while tracked: the zap marks it, the pin keeps the mark. */
	EXPECT_EQ(1, read_page(buf, 2));
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 2, 3, OVER });
	ASSERT_EQ(0, madvise(PG(buf, 2), page_size, MADV_DONTNEED));
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 2, 3, OVER });
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 2, 3, OVER });

	unpin_expect_page_then_none(_metadata, fd, self->pidfd, buf, 8, 2);
	close(memfd);
	close(fd);
}

/* A one-entry io_uring, driven with the raw system calls. */
struct ring {
	int fd;
	void *sq, *cq;
	size_t sq_len, cq_len;
	struct io_uring_sqe *sqes;
	struct io_uring_params p;
};

static int ring_open(struct ring *r)
{
	memset(r, 0, sizeof(*r));
	r->fd = syscall(__NR_io_uring_setup, 1, &r->p);
	if (r->fd < 0)
		return -1;
	r->sq_len = r->p.sq_off.array + r->p.sq_entries * sizeof(__u32);
	r->cq_len = r->p.cq_off.cqes +
		    r->p.cq_entries * sizeof(struct io_uring_cqe);
	r->sq = mmap(NULL, r->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		     r->fd, IORING_OFF_SQ_RING);
	r->cq = mmap(NULL, r->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		     r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, sizeof(*r->sqes), PROT_READ | PROT_WRITE,
		       MAP_SHARED, r->fd, IORING_OFF_SQES);
	if (r->sq == MAP_FAILED || r->cq == MAP_FAILED ||
	    r->sqes == MAP_FAILED)
		return -1;
	return 0;
}

/* Submit @sqe and wait for its completion: its result. */
static int ring_run(struct ring *r, const struct io_uring_sqe *sqe)
{
	__u32 *sq_tail = r->sq + r->p.sq_off.tail;
	__u32 *sq_array = r->sq + r->p.sq_off.array;
	__u32 *cq_head = r->cq + r->p.cq_off.head;
	struct io_uring_cqe *cqes = r->cq + r->p.cq_off.cqes;
	__u32 tail = *sq_tail, head;
	int res;

	r->sqes[0] = *sqe;
	sq_array[tail & *(__u32 *)(r->sq + r->p.sq_off.ring_mask)] = 0;
	__atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS,
		    NULL, 0) != 1)
		return -errno;
	head = *cq_head;
	res = cqes[head & *(__u32 *)(r->cq + r->p.cq_off.ring_mask)].res;
	__atomic_store_n(cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

/*
 * io_uring pins registered buffers for as long as they stay registered,
 * and its fixed-buffer reads write them through the pin.  A buffer
 * registered before tracking starts is written without a fault.
 */
TEST_F(ts, io_uring_buffer_registered_before_track)
{
	struct io_uring_sqe sqe = { 0 };
	struct iovec iov;
	struct ring ring;
	int pipefd[2];
	char *buf;

	buf = map_anon(8);
	ASSERT_NE(NULL, buf);
	memset(buf, 1, 8 * page_size);
	if (ring_open(&ring))
		SKIP(return, "no io_uring: %s", strerror(errno));
	iov.iov_base = PG(buf, 2);
	iov.iov_len = 2 * page_size;
	ASSERT_EQ(0, syscall(__NR_io_uring_register, ring.fd,
			     IORING_REGISTER_BUFFERS, &iov, 1)) {
		TH_LOG("IORING_REGISTER_BUFFERS: %s", strerror(errno));
	}

	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 2, 4, OVER });

	/* A fixed-buffer read into page 3, through the pin. */
	ASSERT_EQ(0, pipe(pipefd));
	ASSERT_EQ(8, write(pipefd[1], "\2\2\2\2\2\2\2\2", 8));
	sqe.opcode = IORING_OP_READ_FIXED;
	sqe.fd = pipefd[0];
	sqe.addr = (uintptr_t)PG(buf, 3) + 8;
	sqe.len = 8;
	sqe.buf_index = 0;
	EXPECT_EQ(8, ring_run(&ring, &sqe));
	EXPECT_EQ(2, buf[3 * page_size + 8]);
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 2, 4, OVER });

	ASSERT_EQ(0, syscall(__NR_io_uring_register, ring.fd,
			     IORING_UNREGISTER_BUFFERS, NULL, 0));
	expect_unpinned_then_none(_metadata, self->pidfd, buf, 8, 2, 4);
	close(pipefd[0]);
	close(pipefd[1]);
	close(ring.fd);
}

/* ---- uprobes ---------------------------------------------------------- */

#define TRACEFS		"/sys/kernel/tracing"
#define UPROBE_EVENTS	TRACEFS "/uprobe_events"
#define UPROBE_ENABLE	TRACEFS "/events/touched_sweep/bp/enable"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL	0x0008U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC	0x0010U
#endif

/*
 * The probed text: the start of this function (never called, its address
 * taken), copied, so that the probe sits on an instruction whatever the
 * architecture.  The longest instruction of any architecture fits in
 * UPROBE_INSN_MAX bytes.
 */
#define UPROBE_INSN_MAX	16

static void uprobe_target(void)
{
	asm volatile("");
}

/*
 * Registering a uprobe writes a breakpoint into every mapping of the
 * probed text: __replace_page() maps a new copy of the page, read-only,
 * with no write fault.  Unregistering takes the breakpoint out the same
 * way, or, when the file's page is what is left, drops the entry so that
 * the next access maps the file's page.  Both change what the tracked page
 * holds, so both are reported.
 * The breakpoint's copy is an anonymous page with a clean entry and a
 * clean folio, which the sweep cannot tell from a lazily freed one: it is
 * reported OVERREPORTED, and keeps its mark, while it is mapped.
 */
TEST_F(ts, uprobe_breakpoint_reported)
{
	const char *fn = (const char *)uprobe_target;
	size_t off = (uintptr_t)fn & (page_size - 1);
	char cmd[128], *text, *orig;
	int fd;

	if (access(UPROBE_EVENTS, W_OK))
		mount("nodev", TRACEFS, "tracefs", 0, NULL);
	if (access(UPROBE_EVENTS, W_OK))
		SKIP(return, "no " UPROBE_EVENTS);

	fd = memfd_create("touched_sweep_uprobe", MFD_CLOEXEC | MFD_EXEC);
	/* vm.memfd_noexec=2 refuses MFD_EXEC; PROT_EXEC mappings still work. */
	if (fd < 0)
		fd = memfd_create("touched_sweep_uprobe",
				  MFD_CLOEXEC | MFD_NOEXEC_SEAL);
	ASSERT_GE(fd, 0);
	orig = calloc(4, page_size);
	ASSERT_NE(NULL, orig);
	memcpy(PG(orig, 2) + off, fn, UPROBE_INSN_MAX);
	ASSERT_EQ((ssize_t)(4 * page_size), write(fd, orig, 4 * page_size));
	text = mmap(NULL, 4 * page_size, PROT_READ | PROT_EXEC, MAP_PRIVATE,
		    fd, 0);
	ASSERT_NE(MAP_FAILED, text);
	read_pages(text, 0, 4);
	ASSERT_EQ(0, track(self->pidfd, text, 4 * page_size));
	EXPECT_NONE(self->pidfd, text, 4, CLEAR);

	/* A leftover of an earlier run would make the new definition fail. */
	write_file(UPROBE_ENABLE, "0");
	write_file(UPROBE_EVENTS, "-:touched_sweep/bp");
	snprintf(cmd, sizeof(cmd), "p:touched_sweep/bp /proc/self/fd/%d:%#zx",
		 fd, 2 * page_size + off);
	ASSERT_EQ(0, write_file(UPROBE_EVENTS, cmd)) {
		TH_LOG("%s > %s: %s", cmd, UPROBE_EVENTS, strerror(errno));
	}
	EXPECT_EQ(0, write_file(UPROBE_ENABLE, "1")) {
		TH_LOG("enabling the uprobe: %s", strerror(errno));
	}
	EXPECT_NE(0, memcmp(PG(text, 2), PG(orig, 2), page_size));
	EXPECT_PAGES(self->pidfd, text, 4, CLEAR, { 2, 3, OVER });
	EXPECT_PAGES(self->pidfd, text, 4, CLEAR, { 2, 3, OVER });

	EXPECT_EQ(0, write_file(UPROBE_ENABLE, "0"));
	EXPECT_EQ(0, memcmp(PG(text, 2), PG(orig, 2), page_size));
	EXPECT_PAGES(self->pidfd, text, 4, CLEAR, { 2, 3, TOUCHED });
	EXPECT_NONE(self->pidfd, text, 4, CLEAR);

	EXPECT_EQ(0, write_file(UPROBE_EVENTS, "-:touched_sweep/bp"));
	munmap(text, 4 * page_size);
	free(orig);
	close(fd);
}

#define REMOTE_WRITE_DELAY \
	"/sys/module/touched_check/parameters/remote_write_delay_ms"

struct mem_write_arg {
	int fd;
	char *addr;
	ssize_t ret;
};

static void *mem_write_thread(void *p)
{
	struct mem_write_arg *a = p;

	a->ret = pwrite(a->fd, "\2", 1, (off_t)(uintptr_t)a->addr);
	return NULL;
}

/*
 * /proc/PID/mem and ptrace take the page, then write it with mmap_lock
 * held for reading, which a sweep takes too.  A clearing sweep in between
 * must keep the mark (the writer pins the page): cleared, the page would
 * be reported before the write lands, and never after.
 */
TEST_F(ts, proc_mem_write_held_across_a_sweep)
{
	struct mem_write_arg arg = { 0 };
	struct pr got[MAX_PR];
	int delay, i, n = 0;
	pthread_t thread;
	char *buf;

	delay = open(REMOTE_WRITE_DELAY, O_WRONLY | O_CLOEXEC);
	if (delay < 0)
		SKIP(return, "no " REMOTE_WRITE_DELAY);
	arg.fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, arg.fd);
	buf = map_anon(4);
	ASSERT_NE(NULL, buf);
	memset(buf, 1, 4 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 4 * page_size));
	EXPECT_NONE(self->pidfd, buf, 4, PEEK);

	/* Hold the next write of this task to itself through /proc/PID/mem. */
	ASSERT_EQ(4, write(delay, "3000", 4));
	arg.addr = PG(buf, 2) + 8;
	ASSERT_EQ(0, pthread_create(&thread, NULL, mem_write_thread, &arg));
	/* The writer faults the page in for writing, marking it, then waits. */
	for (i = 0; i < 1000 && n == 0; i++) {
		n = sweep_pages(_metadata, self->pidfd, buf, 4, PEEK, got, MAX_PR);
		if (n == 0)
			usleep(1000);
	}
	ASSERT_EQ(1, n);
	EXPECT_PAGES(self->pidfd, buf, 4, CLEAR, { 2, 3, OVER });
	/* The sweep did run in the window: the write has not landed yet. */
	EXPECT_EQ(1, buf[2 * page_size + 8]);

	ASSERT_EQ(0, pthread_join(thread, NULL));
	ASSERT_EQ(1, arg.ret);
	EXPECT_EQ(2, buf[2 * page_size + 8]);
	EXPECT_PAGES(self->pidfd, buf, 4, CLEAR, { 2, 3, TOUCHED });
	EXPECT_NONE(self->pidfd, buf, 4, CLEAR);
	close(arg.fd);
	close(delay);
}

struct pvw_arg {
	pid_t pid;
	void *local;
	void *remote;
	ssize_t ret;
};

static void *pvw_thread(void *p)
{
	struct pvw_arg *a = p;
	struct iovec local = { .iov_base = a->local, .iov_len = page_size };
	struct iovec remote = { .iov_base = a->remote, .iov_len = page_size };

	a->ret = process_vm_writev(a->pid, &local, 1, &remote, 1, 0);
	return NULL;
}

/*
 * process_vm_writev() pins the target page, then copies from its own
 * buffer: held on a missing userfaultfd page there, it writes the target
 * after the target was tracked, through a pin taken before.
 */
TEST_F(ts, pinned_by_process_vm_writev_before_track)
{
	char *target = map_anon(4), *src, *fill = map_anon(1);
	struct pvw_arg arg = { 0 };
	struct uffdio_copy copy = { 0 };
	struct pollfd pfd = { 0 };
	struct uffd_msg msg;
	struct pr got[MAX_PR];
	pthread_t thread;
	int uffd, i, n, reported = 0;

	ASSERT_NE(NULL, target);
	ASSERT_NE(NULL, fill);
	src = map_anon(1);
	ASSERT_NE(NULL, src);
	memset(target, 1, 4 * page_size);
	memset(fill, 0x77, page_size);
	uffd = uffd_open(0);
	if (uffd < 0)
		SKIP(return, "userfaultfd not permitted");
	ASSERT_EQ(0, uffd_register(uffd, src, page_size));

	arg.pid = getpid();
	arg.local = src;
	arg.remote = PG(target, 2);
	ASSERT_EQ(0, pthread_create(&thread, NULL, pvw_thread, &arg));
	/* Wait for the copy to fault on the source: the target is pinned. */
	pfd.fd = uffd;
	pfd.events = POLLIN;
	ASSERT_EQ(1, poll(&pfd, 1, 10000));
	ASSERT_EQ(sizeof(msg), read(uffd, &msg, sizeof(msg)));
	ASSERT_EQ(UFFD_EVENT_PAGEFAULT, msg.event);

	ASSERT_EQ(0, track(self->pidfd, target, 4 * page_size));
	EXPECT_PAGES(self->pidfd, target, 4, CLEAR, { 2, 3, OVER });

	copy.dst = (uintptr_t)src;
	copy.src = (uintptr_t)fill;
	copy.len = page_size;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_COPY, &copy));
	ASSERT_EQ(0, pthread_join(thread, NULL));
	ASSERT_EQ(page_size, arg.ret);
	EXPECT_EQ(0x77, read_page(target, 2));

	/* The write through the pin is reported, once the pin is gone. */
	n = sweep_pages(_metadata, self->pidfd, target, 4, CLEAR, got, MAX_PR);
	for (i = 0; i < n; i++) {
		EXPECT_TRUE(got[i].first == 2 && got[i].last == 3);
		reported++;
	}
	EXPECT_EQ(1, reported);
	EXPECT_NONE(self->pidfd, target, 4, CLEAR);
	close(uffd);
}

/* ---- Sizes and failures ------------------------------------------- */

/* Start reading /dev/kmsg from its end: what the kernel says from now on. */
static int kmsg_open_end(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

/* Lines the kernel logged at warning level or above since kmsg_open_end(). */
static int kmsg_warnings(struct __test_metadata *_metadata, int fd)
{
	char rec[8192];
	int n = 0;
	ssize_t len;

	while ((len = read(fd, rec, sizeof(rec) - 1)) > 0 || errno == EPIPE) {
		if (len <= 0)
			continue;
		rec[len] = '\0';
		if (atoi(rec) % 8 <= 4) {
			TH_LOG("kernel: %s", strchr(rec, ';') ? strchr(rec, ';') + 1 : rec);
			n++;
		}
	}
	return n;
}

/*
 * Any process may reserve terabytes it never touches and track them: the
 * marks it asks for cannot be had, and that is ENOMEM, not a warning.
 */
TEST_F(ts, huge_reservation_enomem_quietly)
{
	const size_t tib = (size_t)1 << 40;
	/* Marks of 2 GiB (kvmalloc()'s limit) and of 2.25 GiB (vmalloc()). */
	const size_t sizes[] = { 64 * tib, 72 * tib };
	char *one, *p;
	int kmsg = kmsg_open_end();
	unsigned int i;

	/* Not accounted, so that mremap() gets as far as the marks. */
	one = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, one);
	ASSERT_LE(0, kmsg);
	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		if (sizes[i] >= (uintptr_t)ADDR_SPACE_END)
			SKIP(return, "address space too small");
		p = mmap(NULL, sizes[i], PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		ASSERT_NE(MAP_FAILED, p) {
			TH_LOG("reserving %zu TiB: %s", sizes[i] / tib,
			       strerror(errno));
		}
		EXPECT_ERRNO(ENOMEM, track(self->pidfd, p, sizes[i]));
		/* Nothing was tracked: the VMA is whole and untracked. */
		EXPECT_EQ(1, count_vmas(p, p + sizes[i]));
		EXPECT_NONE(self->pidfd, p, 1, PEEK);
		ASSERT_EQ(0, munmap(p, sizes[i]));
	}

	/* Growing a tracked VMA moves it: the new marks cannot be had. */
	ASSERT_EQ(0, track(self->pidfd, one, page_size));
	write_page(one, 0, 3);
	p = mremap(one, page_size, 64 * tib, MREMAP_MAYMOVE);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(ENOMEM, errno);
	EXPECT_EQ(3, read_page(one, 0));
	EXPECT_PAGES(self->pidfd, one, 1, PEEK, { 0, 1, TOUCHED });

	EXPECT_EQ(0, kmsg_warnings(_metadata, kmsg));
	close(kmsg);
}

/* Page-table pages of this process, in KiB (VmPTE). */
static long vm_pte_kb(void)
{
	char buf[4096], *line;

	if (read_file("/proc/self/status", buf, sizeof(buf)))
		return -1;
	line = strstr(buf, "VmPTE:");
	return line ? atol(line + 6) : -1;
}

/*
 * mremap() marks every page of the new range, mapped or not: a clearing
 * sweep clears marks where no page table exists without allocating one.
 */
TEST_F(ts, sweep_allocates_no_page_tables)
{
	const long npages = 256L << 10;		/* 1 GiB with 4 KiB pages */
	char *buf = mmap(NULL, npages * page_size, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *dst, *moved;
	long before;

	ASSERT_NE(MAP_FAILED, buf);
	dst = mmap(NULL, npages * page_size, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, dst);
	ASSERT_EQ(0, track(self->pidfd, buf, npages * page_size));
	moved = mremap(buf, npages * page_size, npages * page_size,
		       MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ASSERT_EQ(dst, moved);

	before = vm_pte_kb();
	ASSERT_LE(0, before);
	EXPECT_PAGES(self->pidfd, moved, npages, CLEAR, { 0, npages, TOUCHED });
	EXPECT_NONE(self->pidfd, moved, npages, PEEK);
	/* A page table maps 2 MiB: 512 of them would be 2 MiB of VmPTE. */
	EXPECT_GT(before + 64, vm_pte_kb());
	EXPECT_PAGES(self->pidfd, buf, npages, CLEAR, { 0, npages, GONE });
}

/*
 * A clearing sweep that cannot store its entries gives their marks back:
 * the pages are reported by the next sweep, not lost.
 */
TEST_F(ts, sweep_efault_gives_marks_back)
{
	const long npages = 1200;
	long rest[1200 / 2], nrest;
	struct touched_range *vec;
	struct touched_sweep_args *args;
	char *buf = map_anon(npages), *area;
	size_t room;
	__u64 walk_end;
	long ret, i;

	ASSERT_NE(NULL, buf);
	memset(buf, 1, npages * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, npages * page_size));
	/* Every other page: one entry each, more than a round holds. */
	for (i = 0; i < npages; i += 2)
		write_page(buf, i, 2);

	/* Room for 550 entries, then a page that cannot be written. */
	room = 550 * sizeof(*vec);
	area = mmap(NULL, room + 2 * page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, area);
	ASSERT_EQ(0, mprotect(area + page_size + room / page_size * page_size,
			      page_size, PROT_READ));
	vec = (void *)(area + page_size + room / page_size * page_size - room);

	ret = sweep(self->pidfd, buf, PG(buf, npages), CLEAR, vec, npages,
		    &walk_end);
	/*
	 * The rounds before the one that faulted were stored, less the
	 * entry each holds back: how many depends on the kernel's round
	 * size, but the fault comes before the 550th.
	 */
	ASSERT_GT(ret, 0);
	ASSERT_LT(ret, 550);
	EXPECT_EQ((uintptr_t)PG(buf, 2 * ret), walk_end);
	EXPECT_EQ((uintptr_t)PG(buf, 2 * (ret - 1)), vec[ret - 1].start);
	EXPECT_NONE(self->pidfd, buf, 2 * ret, PEEK);
	/* The rest were cleared, then given back. */
	nrest = (npages - 2 * ret) / 2;
	for (i = 0; i < nrest; i++)
		rest[i] = 2 * ret + 2 * i;
	EXPECT_PAGE_LIST(self->pidfd, buf, npages, PEEK, rest, nrest);

	/* walk_end itself cannot be stored: fail before clearing anything. */
	args = (void *)area;
	init_args(args, TOUCHED_SWEEP_OP_SWEEP, buf, PG(buf, npages));
	args->flags = CLEAR;
	args->vec = (uintptr_t)area + page_size;
	args->vec_len = 8;
	ASSERT_EQ(0, mprotect(area, page_size, PROT_READ));
	EXPECT_ERRNO(EFAULT, sys_touched_sweep(self->pidfd, args));
	EXPECT_PAGE_LIST(self->pidfd, buf, npages, PEEK, rest, nrest);
}

/* ---- Lifecycle ------------------------------------------------------ */

TEST_F(ts, munmap_reports_gone)
{
	char *buf = map_anon(8), *again;

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 8 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	write_page(buf, 2, 2);
	write_page(buf, 5, 2);
	ASSERT_EQ(0, munmap(PG(buf, 2), 2 * page_size));

	/* GONE wins over TOUCHED; test-only sweeps keep it... */
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 2, 4, GONE }, { 5, 6, TOUCHED });
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 2, 4, GONE }, { 5, 6, TOUCHED });
	/* ...a clearing sweep reports it once and forgets it. */
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 2, 4, GONE }, { 5, 6, TOUCHED });
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);

	/* New memory in the hole is not tracked. */
	again = mmap(PG(buf, 2), 2 * page_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ASSERT_EQ(PG(buf, 2), again);
	write_page(buf, 2, 3);
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);
}

TEST_F(ts, map_fixed_over_reports_gone)
{
	char *buf = map_anon(8), *over;

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 8 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	write_page(buf, 3, 2);

	over = mmap(PG(buf, 2), 2 * page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_EQ(PG(buf, 2), over);
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 2, 4, GONE });
	/* The new mapping is untracked. */
	write_page(buf, 2, 3);
	write_page(buf, 6, 3);
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 2, 4, GONE }, { 6, 7, TOUCHED });
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);
}

TEST_F(ts, mremap_move_gone_and_touched)
{
	char *buf = map_anon(8), *dst = map_anon(8), *moved;
	long i;

	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, dst);
	for (i = 0; i < 8; i++)
		memset(PG(buf, i), i + 1, page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	write_page(buf, 1, 0x10);

	moved = mremap(buf, 8 * page_size, 8 * page_size,
		       MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ASSERT_EQ(dst, moved);
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 0, 8, GONE });
	EXPECT_PAGES(self->pidfd, moved, 8, CLEAR, { 0, 8, TOUCHED });
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 0, 8, GONE });
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);
	EXPECT_NONE(self->pidfd, moved, 8, PEEK);

	/* The new range is tracked. */
	EXPECT_EQ(0x10, read_page(moved, 1));
	EXPECT_EQ(6, read_page(moved, 5));
	write_page(moved, 5, 0x20);
	EXPECT_PAGES(self->pidfd, moved, 8, PEEK, { 5, 6, TOUCHED });
}

TEST_F(ts, mremap_dontunmap_gone)
{
	char *buf = map_anon(4), *moved;

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 4 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 4 * page_size));

	moved = mremap(buf, 4 * page_size, 4 * page_size,
		       MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
	ASSERT_NE(MAP_FAILED, moved);
	EXPECT_PAGES(self->pidfd, buf, 4, PEEK, { 0, 4, GONE });
	EXPECT_PAGES(self->pidfd, moved, 4, CLEAR, { 0, 4, TOUCHED });
	EXPECT_EQ(1, read_page(moved, 2));

	/*
	 * The old range keeps its VMA, and with it tracking; only its
	 * contents went.  Once the gone record is cleared, writes show.
	 */
	write_page(buf, 1, 2);
	EXPECT_PAGES(self->pidfd, buf, 4, CLEAR, { 0, 4, GONE });
	write_page(buf, 2, 2);
	EXPECT_PAGES(self->pidfd, buf, 4, PEEK, { 2, 3, TOUCHED });
	write_page(moved, 3, 2);
	EXPECT_PAGES(self->pidfd, moved, 4, PEEK, { 3, 4, TOUCHED });
}

TEST_F(ts, mremap_grow_in_place_enomem)
{
	char *plain = map_anon(8), *buf = map_anon(8), *moved;
	struct pr got[MAX_PR];
	int n;

	ASSERT_NE(NULL, plain);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, munmap(PG(plain, 4), 4 * page_size));
	ASSERT_EQ(0, munmap(PG(buf, 4), 4 * page_size));
	memset(buf, 1, 4 * page_size);

	/* An untracked VMA grows in place into the free space after it... */
	ASSERT_EQ(plain, mremap(plain, 4 * page_size, 8 * page_size, 0));

	/* ...a tracked one cannot, and is left as it was. */
	ASSERT_EQ(0, track(self->pidfd, buf, 4 * page_size));
	write_page(buf, 1, 2);
	errno = 0;
	EXPECT_EQ(MAP_FAILED, mremap(buf, 4 * page_size, 8 * page_size, 0));
	EXPECT_EQ(ENOMEM, errno);
	EXPECT_PAGES(self->pidfd, buf, 4, PEEK, { 1, 2, TOUCHED });

	/* Allowed to move, it moves. */
	moved = mremap(buf, 4 * page_size, 8 * page_size, MREMAP_MAYMOVE);
	ASSERT_NE(MAP_FAILED, moved);
	EXPECT_NE(buf, moved);
	EXPECT_PAGES(self->pidfd, buf, 4, CLEAR, { 0, 4, GONE });
	/* The moved part is all TOUCHED; the spec leaves the grown part open. */
	n = sweep_pages(_metadata, self->pidfd, moved, 8, CLEAR, got, MAX_PR);
	ASSERT_EQ(1, n);
	EXPECT_EQ(0, got[0].first);
	EXPECT_LE(4, got[0].last);
	EXPECT_EQ(TOUCHED, got[0].flags);
	EXPECT_EQ(2, read_page(moved, 1));
	write_page(moved, 2, 3);
	EXPECT_PAGES(self->pidfd, moved, 8, PEEK, { 2, 3, TOUCHED });
}

TEST_F(ts, split_keeps_marks)
{
	char *buf = map_anon(10);

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 10 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 10 * page_size));
	write_page(buf, 2, 2);
	write_page(buf, 3, 2);
	write_page(buf, 5, 2);
	write_page(buf, 7, 2);

	/* Split by mprotect at page 3, and by munmap of page 6. */
	ASSERT_EQ(0, mprotect(PG(buf, 3), 7 * page_size, PROT_READ));
	EXPECT_TRUE(vma_starts_at(PG(buf, 3)));
	ASSERT_EQ(0, munmap(PG(buf, 6), page_size));
	EXPECT_PAGES(self->pidfd, buf, 10, PEEK,
		     { 2, 4, TOUCHED }, { 5, 6, TOUCHED }, { 6, 7, GONE }, { 7, 8, TOUCHED });
	EXPECT_PAGES(self->pidfd, buf, 10, CLEAR,
		     { 2, 4, TOUCHED }, { 5, 6, TOUCHED }, { 6, 7, GONE }, { 7, 8, TOUCHED });
	EXPECT_NONE(self->pidfd, buf, 10, PEEK);
}

TEST_F(ts, untrack_drops_marks)
{
	char *buf = map_anon(8);

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 8 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	write_page(buf, 1, 2);
	write_page(buf, 2, 2);
	write_page(buf, 5, 2);

	/* Pending marks go, without GONE; the rest stays tracked. */
	ASSERT_EQ(0, untrack(self->pidfd, buf, 4 * page_size));
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 5, 6, TOUCHED });
	write_page(buf, 0, 3);
	write_page(buf, 6, 3);
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 5, 7, TOUCHED });

	/* Holes and untracked parts are skipped; unmapping untracked memory is not GONE. */
	ASSERT_EQ(0, munmap(PG(buf, 3), page_size));
	ASSERT_EQ(0, untrack(self->pidfd, buf, 8 * page_size));
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);
	write_page(buf, 7, 3);
	EXPECT_NONE(self->pidfd, buf, 8, CLEAR);
}

TEST_F(ts, fork_child_not_tracked)
{
	struct touched_range out[4];
	char *buf = map_anon(8);
	struct child c;

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 8 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	ASSERT_EQ(0, start_child(&c, buf, 8));

	ASSERT_EQ('k', child_do(&c, 'w', 1));
	ASSERT_EQ('k', child_do(&c, 'w', 2));
	EXPECT_NONE(c.pidfd, buf, 8, PEEK);
	EXPECT_EQ(0, collect(_metadata, c.pidfd, NULL, ADDR_SPACE_END, PEEK, out, 4, CHUNK));
	EXPECT_NONE(self->pidfd, buf, 8, PEEK);

	/* The parent is unaffected. */
	write_page(buf, 4, 2);
	EXPECT_PAGES(self->pidfd, buf, 8, PEEK, { 4, 5, TOUCHED });

	/* The child can be tracked on its own. */
	ASSERT_EQ(0, track(c.pidfd, buf, 8 * page_size));
	ASSERT_EQ('k', child_do(&c, 'w', 6));
	EXPECT_PAGES(c.pidfd, buf, 8, PEEK, { 6, 7, TOUCHED });
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 4, 5, TOUCHED });
	stop_child(&c);
}

TEST_F(ts, exec_replaces_tracked_mm)
{
	struct touched_range out[4];
	char *buf = map_anon(4);
	struct child c;
	__u64 walk_end;
	char r;

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 4 * page_size);
	ASSERT_EQ(0, start_child(&c, buf, 4));
	ASSERT_EQ('k', child_do(&c, 'f', 0));
	ASSERT_EQ(0, track(c.pidfd, buf, 4 * page_size));
	ASSERT_EQ('k', child_do(&c, 'w', 1));
	EXPECT_PAGES(c.pidfd, buf, 4, PEEK, { 1, 2, TOUCHED });
	EXPECT_EQ(1, collect(_metadata, c.pidfd, NULL, ADDR_SPACE_END, PEEK, out, 4, CHUNK));

	/* EOF on the close-on-exec ack pipe: the new mm is in place. */
	r = child_do(&c, 'x', 0);
	if (r == 'e') {
		stop_child(&c);
		SKIP(return, "cannot exec /bin/sleep");
	}
	ASSERT_EQ(0, r);
	ASSERT_EQ(0, waitpid(c.pid, NULL, WNOHANG));
	EXPECT_EQ(0, sweep(c.pidfd, NULL, ADDR_SPACE_END, CLEAR, out, 4, &walk_end)) {
		TH_LOG("sweep after exec: %s", strerror(errno));
	}
	EXPECT_EQ((uintptr_t)ADDR_SPACE_END, walk_end);
	stop_child(&c);
}

/* ---- Sweep ---------------------------------------------------------- */

TEST_F(ts, test_only_vs_clear)
{
	char *buf = map_anon(16);

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 16 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 16 * page_size));
	write_page(buf, 1, 2);
	write_page(buf, 2, 2);
	write_page(buf, 7, 2);

	EXPECT_PAGES(self->pidfd, buf, 16, PEEK, { 1, 3, TOUCHED }, { 7, 8, TOUCHED });
	EXPECT_PAGES(self->pidfd, buf, 16, PEEK, { 1, 3, TOUCHED }, { 7, 8, TOUCHED });
	EXPECT_PAGES(self->pidfd, buf, 16, CLEAR, { 1, 3, TOUCHED }, { 7, 8, TOUCHED });
	EXPECT_NONE(self->pidfd, buf, 16, PEEK);
	EXPECT_NONE(self->pidfd, buf, 16, CLEAR);

	/* A window clips the entries, and a clearing one clears only inside. */
	write_page(buf, 1, 3);
	write_page(buf, 2, 3);
	write_page(buf, 7, 3);
	EXPECT_PAGES(self->pidfd, PG(buf, 2), 4, CLEAR, { 0, 1, TOUCHED });
	EXPECT_PAGES(self->pidfd, buf, 16, PEEK, { 1, 2, TOUCHED }, { 7, 8, TOUCHED });
}

TEST_F(ts, tiny_output_buffer)
{
	const struct {
		unsigned int len;
		__u32 flags;
	} pass[] = { { 1, PEEK }, { 1, CLEAR }, { 3, CLEAR } };
	struct touched_range vec[3];
	char *buf = map_anon(64), *end = PG(buf, 64);
	__u64 cur, walk_end;
	int p, got, calls;
	long ret, i;

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 64 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 64 * page_size));

	for (p = 0; p < (int)ARRAY_SIZE(pass); p++) {
		/* Every other page: 32 ranges that never coalesce. */
		for (i = 0; i < 64; i += 2)
			write_page(buf, i, p + 2);
		cur = (uintptr_t)buf;
		got = 0;
		calls = 0;
		while (cur != (uintptr_t)end) {
			ret = sweep(self->pidfd, (void *)(uintptr_t)cur, end, pass[p].flags,
				    vec, pass[p].len, &walk_end);
			ASSERT_LE(0, ret);
			ASSERT_GE(pass[p].len, ret);
			ASSERT_LT(cur, walk_end);
			ASSERT_GE((uintptr_t)end, walk_end);
			for (i = 0; i < ret; i++) {
				ASSERT_GT(32, got);
				EXPECT_EQ((uintptr_t)PG(buf, 2 * got), vec[i].start);
				EXPECT_EQ((uintptr_t)PG(buf, 2 * got + 1), vec[i].end);
				EXPECT_EQ(TOUCHED, vec[i].flags);
				EXPECT_GE(walk_end, vec[i].end);
				got++;
			}
			cur = walk_end;
			ASSERT_GT(100, ++calls);
		}
		EXPECT_EQ(32, got);
		TH_LOG("vec_len %u: %d calls", pass[p].len, calls);
		if (pass[p].flags & CLEAR)
			EXPECT_NONE(self->pidfd, buf, 64, PEEK);
	}
	EXPECT_NONE(self->pidfd, buf, 64, CLEAR);
}

TEST_F(ts, vec_len_zero)
{
	char *buf = map_anon(16), *end = PG(buf, 16);
	__u64 walk_end;

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 16 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 16 * page_size));

	/* Nothing to report: the whole window is done. */
	EXPECT_EQ(0, sweep(self->pidfd, buf, end, PEEK, NULL, 0, &walk_end));
	EXPECT_EQ((uintptr_t)end, walk_end);

	/* Otherwise it stops where the first entry would start... */
	write_page(buf, 5, 2);
	write_page(buf, 9, 2);
	EXPECT_EQ(0, sweep(self->pidfd, buf, end, PEEK, NULL, 0, &walk_end));
	EXPECT_EQ((uintptr_t)PG(buf, 5), walk_end);
	EXPECT_EQ(0, sweep(self->pidfd, PG(buf, 6), end, CLEAR, NULL, 0, &walk_end));
	EXPECT_EQ((uintptr_t)PG(buf, 9), walk_end);
	/* ...and clears nothing, having reported nothing. */
	EXPECT_PAGES(self->pidfd, buf, 16, PEEK, { 5, 6, TOUCHED }, { 9, 10, TOUCHED });

	/* An empty window. */
	EXPECT_EQ(0, sweep(self->pidfd, PG(buf, 5), PG(buf, 5), CLEAR, NULL, 0, &walk_end));
	EXPECT_EQ((uintptr_t)PG(buf, 5), walk_end);
	EXPECT_PAGES(self->pidfd, buf, 16, PEEK, { 5, 6, TOUCHED }, { 9, 10, TOUCHED });
}

/*
 * More entries than the kernel collects per round under mmap_lock, in one
 * call: every one arrives, in order, and a clearing sweep clears them all.
 * Each page table of the region keeps some marks and loses others.
 */
TEST_F(ts, many_entries_in_one_call)
{
	const long n = 3000, want = n / 2;
	struct touched_range *vec = calloc(n, sizeof(*vec));
	char *buf = map_anon(n);
	__u64 walk_end;
	long i, ret;

	ASSERT_NE(NULL, vec);
	ASSERT_NE(NULL, buf);
	memset(buf, 1, n * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, n * page_size));
	for (i = 0; i < n; i += 2)
		write_page(buf, i, 2);

	ret = sweep(self->pidfd, buf, PG(buf, n), PEEK, vec, n, &walk_end);
	ASSERT_EQ(want, ret);
	EXPECT_EQ((uintptr_t)PG(buf, n), walk_end);
	for (i = 0; i < want; i++) {
		EXPECT_EQ((uintptr_t)PG(buf, 2 * i), vec[i].start);
		EXPECT_EQ((uintptr_t)PG(buf, 2 * i + 1), vec[i].end);
		EXPECT_EQ(TOUCHED, vec[i].flags);
	}

	/* One entry short: the sweep stops before the last page. */
	ret = sweep(self->pidfd, buf, PG(buf, n), CLEAR, vec, want - 1,
		    &walk_end);
	ASSERT_EQ(want - 1, ret);
	EXPECT_EQ((uintptr_t)PG(buf, n - 2), walk_end);
	EXPECT_EQ((uintptr_t)PG(buf, n - 4), vec[want - 2].start);
	EXPECT_PAGES(self->pidfd, buf, n, CLEAR, { n - 2, n - 1, TOUCHED });
	EXPECT_NONE(self->pidfd, buf, n, CLEAR);

	/* Cleared means write-protected again: each write is seen. */
	write_page(buf, 1, 3);
	write_page(buf, n - 1, 3);
	EXPECT_PAGES(self->pidfd, buf, n, CLEAR, { 1, 2, TOUCHED },
		     { n - 1, n, TOUCHED });
	free(vec);
}

/*
 * VMAs whose marks take more than a page: a bitmap whose size is not a
 * power of two (vmalloc()ed), one that is (kmalloc()ed), and one big
 * enough that a summary bit covers 32 words and the last group is partial.
 * Marks at the edges of words, groups and the VMA are all found.
 */
TEST_F(ts, large_vmas)
{
	const long sizes[] = { 98304, 131072, 524304 };
	int s;

	for (s = 0; s < (int)ARRAY_SIZE(sizes); s++) {
		const long n = sizes[s];
		const long pages[] = { 0, 63, 64, 2047, 2048, n / 2, n - 1 };
		char *buf = mmap(NULL, n * page_size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				 -1, 0);
		int i;

		ASSERT_NE(MAP_FAILED, buf);
		ASSERT_EQ(0, track(self->pidfd, buf, n * page_size));
		for (i = 0; i < (int)ARRAY_SIZE(pages); i++)
			write_page(buf, pages[i], 1);
		EXPECT_PAGE_LIST(self->pidfd, buf, n, PEEK, pages,
				 ARRAY_SIZE(pages));
		EXPECT_PAGE_LIST(self->pidfd, buf, n, CLEAR, pages,
				 ARRAY_SIZE(pages));
		EXPECT_NONE(self->pidfd, buf, n, CLEAR);
		write_page(buf, n - 1, 2);
		EXPECT_PAGES(self->pidfd, buf, n, CLEAR, { n - 1, n, TOUCHED });
		ASSERT_EQ(0, untrack(self->pidfd, buf, n * page_size));
		ASSERT_EQ(0, munmap(buf, n * page_size));
	}
}

TEST_F(ts, coalescing_and_ordering)
{
	char *buf = map_anon(8);

	ASSERT_NE(NULL, buf);
	memset(buf, 1, 8 * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	write_page(buf, 5, 2);
	write_page(buf, 3, 2);
	write_page(buf, 1, 2);
	write_page(buf, 2, 2);
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 1, 4, TOUCHED }, { 5, 6, TOUCHED });

	/* Two tracked VMAs, split by mprotect, never merge again... */
	ASSERT_EQ(0, mprotect(PG(buf, 4), 4 * page_size, PROT_READ));
	ASSERT_EQ(0, mprotect(PG(buf, 4), 4 * page_size, PROT_READ | PROT_WRITE));
	EXPECT_TRUE(vma_starts_at(PG(buf, 4)));
	/* ...but their entries coalesce. */
	write_page(buf, 3, 3);
	write_page(buf, 4, 3);
	EXPECT_PAGES(self->pidfd, buf, 8, CLEAR, { 3, 5, TOUCHED });
}

TEST_F_TIMEOUT(ts, ten_thousand_vmas, 120)
{
	const long n = 10000;
	const long touched[] = { 0, 2, 3, 4, 4999, n - 1 };
	char *buf = map_anon(n);
	double t;
	long i;

	ASSERT_NE(NULL, buf);
	t = now_ms();
	for (i = 1; i < n; i += 2)
		ASSERT_EQ(0, mprotect(PG(buf, i), page_size, PROT_READ));
	ASSERT_EQ(n, count_vmas(buf, PG(buf, n)));
	ASSERT_EQ(0, track(self->pidfd, buf, n * page_size));
	/* Tracked VMAs do not merge, even when their flags match again. */
	ASSERT_EQ(0, mprotect(buf, n * page_size, PROT_READ | PROT_WRITE));
	EXPECT_EQ(n, count_vmas(buf, PG(buf, n)));
	TH_LOG("%ld VMAs set up and tracked in %.0f ms", n, now_ms() - t);

	for (i = 0; i < (long)ARRAY_SIZE(touched); i++)
		write_page(buf, touched[i], 1);
	read_page(buf, 1);
	read_page(buf, 5000);

	t = now_ms();
	EXPECT_PAGE_LIST(self->pidfd, buf, n, PEEK, touched, ARRAY_SIZE(touched));
	TH_LOG("test-only sweep of %ld VMAs: %.1f ms", n, now_ms() - t);
	t = now_ms();
	EXPECT_PAGE_LIST(self->pidfd, buf, n, CLEAR, touched, ARRAY_SIZE(touched));
	TH_LOG("clearing sweep of %ld VMAs: %.1f ms", n, now_ms() - t);
	t = now_ms();
	EXPECT_NONE(self->pidfd, buf, n, PEEK);
	TH_LOG("sweep of %ld clean VMAs: %.1f ms", n, now_ms() - t);
}

/* ---- Concurrent writers --------------------------------------------- */

#define CC_REGIONS	4
#define CC_SIZE		0x100000UL	/* 1 MiB */
#define CC_MS		2000
#define CC_MAX		512

static char *cc_region[CC_REGIONS];
static int cc_stop;
static unsigned long cc_writes[2];

/*
 * Store counters at random 8-byte slots until told to stop.  Writer 0
 * hammers regions 0 and 1; writer 1 sleeps between stores to regions 2 and
 * 3, so that it writes each page only a few times and a store whose mark
 * got lost is rarely hidden by a later one.
 */
static void *cc_writer(void *arg)
{
	unsigned long id = (uintptr_t)arg, count = 0;
	__u64 x = 0x9e3779b97f4a7c15ULL * (id + 1);
	size_t slots = CC_SIZE / sizeof(__u64);
	__u64 *slot;

	while (!__atomic_load_n(&cc_stop, __ATOMIC_RELAXED)) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		slot = (__u64 *)cc_region[2 * id + x % 2] + (x >> 8) % slots;
		__atomic_store_n(slot, ((__u64)id << 56) | ++count, __ATOMIC_RELAXED);
		if (id)
			usleep(20);
	}
	cc_writes[id] = count;
	return NULL;
}

static int cc_setup(char **shadow)
{
	int r;

	for (r = 0; r < CC_REGIONS; r++) {
		cc_region[r] = map_anon(CC_SIZE / page_size);
		shadow[r] = malloc(CC_SIZE);
		if (!cc_region[r] || !shadow[r])
			return -1;
		memset(cc_region[r], r + 1, CC_SIZE);
		memcpy(shadow[r], cc_region[r], CC_SIZE);
	}
	return 0;
}

/*
 * One round of a dumper: clearing-sweep each region of the target and copy
 * every reported range into @shadow, with memcpy() from ourselves or with
 * process_vm_readv() from @remote.  Returns the number of pages copied.
 */
static long cc_round(struct __test_metadata *_metadata, int pidfd, pid_t remote,
		     char **shadow)
{
	struct touched_range out[CC_MAX];
	struct iovec local, rem;
	long pages = 0;
	size_t off, len;
	int r, i, n;

	for (r = 0; r < CC_REGIONS; r++) {
		n = collect(_metadata, pidfd, cc_region[r], cc_region[r] + CC_SIZE,
			    CLEAR, out, CC_MAX, CHUNK);
		for (i = 0; i < n; i++) {
			ASSERT_TRUE(out[i].flags & TOUCHED);
			off = out[i].start - (uintptr_t)cc_region[r];
			len = out[i].end - out[i].start;
			if (!remote) {
				memcpy(shadow[r] + off, cc_region[r] + off, len);
			} else {
				local.iov_base = shadow[r] + off;
				local.iov_len = len;
				rem.iov_base = cc_region[r] + off;
				rem.iov_len = len;
				ASSERT_EQ((ssize_t)len,
					  process_vm_readv(remote, &local, 1, &rem, 1, 0));
			}
			pages += len / page_size;
		}
	}
	return pages;
}

/* The dumper's copy must equal the memory, page for page. */
static void cc_compare(struct __test_metadata *_metadata, char **shadow, char **real)
{
	long stale, first;
	size_t off;
	int r;

	for (r = 0; r < CC_REGIONS; r++) {
		stale = 0;
		first = -1;
		for (off = 0; off < CC_SIZE; off += page_size) {
			if (!memcmp(shadow[r] + off, real[r] + off, page_size))
				continue;
			if (!stale++)
				first = off / page_size;
		}
		EXPECT_EQ(0, stale) {
			TH_LOG("region %d: %ld stale pages in the copy, first page %ld",
			       r, stale, first);
		}
	}
}

TEST_F_TIMEOUT(ts, concurrent_writers_threads, 90)
{
	char *shadow[CC_REGIONS];
	pthread_t thread[2];
	long pages = 0, rounds = 0;
	double t;
	int r;

	ASSERT_EQ(0, cc_setup(shadow));
	for (r = 0; r < CC_REGIONS; r++)
		ASSERT_EQ(0, track(self->pidfd, cc_region[r], CC_SIZE));
	for (r = 0; r < 2; r++)
		ASSERT_EQ(0, pthread_create(&thread[r], NULL, cc_writer, (void *)(uintptr_t)r));

	t = now_ms();
	while (now_ms() - t < CC_MS) {
		pages += cc_round(_metadata, self->pidfd, 0, shadow);
		rounds++;
	}
	__atomic_store_n(&cc_stop, 1, __ATOMIC_RELAXED);
	for (r = 0; r < 2; r++)
		pthread_join(thread[r], NULL);
	pages += cc_round(_metadata, self->pidfd, 0, shadow);

	TH_LOG("%lu + %lu writes, %ld rounds, %ld pages copied",
	       cc_writes[0], cc_writes[1], rounds, pages);
	EXPECT_LT(0, cc_writes[0] + cc_writes[1]);
	EXPECT_LT(0, pages);
	cc_compare(_metadata, shadow, cc_region);
	EXPECT_EQ(0, cc_round(_metadata, self->pidfd, 0, shadow));
}

TEST_F_TIMEOUT(ts, concurrent_writers_child, 90)
{
	char *shadow[CC_REGIONS], *copy[CC_REGIONS];
	struct iovec local, rem;
	long pages = 0, rounds = 0;
	int go[2], pidfd, r, status;
	pthread_t thread;
	pid_t pid;
	double t;
	char c;

	ASSERT_EQ(0, cc_setup(shadow));
	ASSERT_EQ(0, pipe2(go, O_CLOEXEC));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		/* Two writer threads; never touches the harness. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		if (pthread_create(&thread, NULL, cc_writer, (void *)1UL))
			_exit(1);
		cc_writer((void *)0UL);
		_exit(0);
	}
	close(go[0]);
	pidfd = sys_pidfd_open(pid, 0);
	ASSERT_LE(0, pidfd);
	for (r = 0; r < CC_REGIONS; r++)
		ASSERT_EQ(0, track(pidfd, cc_region[r], CC_SIZE));
	ASSERT_EQ(1, write(go[1], "g", 1));

	t = now_ms();
	while (now_ms() - t < CC_MS) {
		pages += cc_round(_metadata, pidfd, pid, shadow);
		rounds++;
	}
	ASSERT_EQ(0, kill(pid, SIGSTOP));
	ASSERT_EQ(pid, waitpid(pid, &status, WUNTRACED));
	ASSERT_TRUE(WIFSTOPPED(status));
	pages += cc_round(_metadata, pidfd, pid, shadow);
	TH_LOG("%ld rounds, %ld pages copied", rounds, pages);
	EXPECT_LT(0, pages);

	for (r = 0; r < CC_REGIONS; r++) {
		copy[r] = malloc(CC_SIZE);
		ASSERT_NE(NULL, copy[r]);
		local.iov_base = copy[r];
		local.iov_len = CC_SIZE;
		rem.iov_base = cc_region[r];
		rem.iov_len = CC_SIZE;
		ASSERT_EQ((ssize_t)CC_SIZE, process_vm_readv(pid, &local, 1, &rem, 1, 0));
	}
	cc_compare(_metadata, shadow, copy);
	EXPECT_EQ(0, cc_round(_metadata, pidfd, pid, shadow));

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(pidfd);
	close(go[1]);
}

/* ---- NUMA hinting ---------------------------------------------------- */

#define NUMA_BALANCING	"/proc/sys/kernel/numa_balancing"
#define NUMA_SCAN_DELAY	"/sys/kernel/debug/sched/numa_balancing/scan_delay_ms"
#define NUMA_SCAN_MIN	"/sys/kernel/debug/sched/numa_balancing/scan_period_min_ms"

/* How many of @n pages at @buf are on a node other than @node. */
/*
 * Run on node 0's CPUs, so that pages on node 1 are remote: where every
 * node has CPUs (not numa=fake), the scheduler could otherwise pick one of
 * node 1's and NUMA balancing would have nothing to move.  Leaves the
 * affinity alone if node 0 has no CPUs.
 */
static void bind_to_node0(void)
{
	char list[256], *p = list;
	unsigned int first, last;
	int used, any = 0;
	cpu_set_t set;

	CPU_ZERO(&set);
	if (read_file("/sys/devices/system/node/node0/cpulist", list,
		      sizeof(list)))
		return;
	while (sscanf(p, "%u%n", &first, &used) == 1) {
		p += used;
		last = first;
		if (*p == '-' && sscanf(p + 1, "%u%n", &last, &used) == 1)
			p += 1 + used;
		for (; first <= last && first < CPU_SETSIZE; first++, any++)
			CPU_SET(first, &set);
		if (*p != ',')
			break;
		p++;
	}
	if (any)
		sched_setaffinity(0, sizeof(set), &set);
}

static int pages_off_node(char *buf, int n, int node)
{
	int status[64], i, off = 0;
	void *pages[64];

	for (i = 0; i < n; i++)
		pages[i] = PG(buf, i);
	if (sys_move_pages(n, pages, NULL, status, 0))
		return -1;
	for (i = 0; i < n; i++)
		off += status[i] >= 0 && status[i] != node;
	return off;
}

/*
 * NUMA balancing turns present entries into PROT_NONE hinting entries and
 * restores them (or migrates the page) on the next access.  Neither may
 * make an unmarked tracked page writable: reads after hinting report
 * nothing, and writes after it are reported page by page.  The pages start
 * on node 1 and the scanner moves them towards the reading CPU's node,
 * which shows that hinting faults happened.  The scanner's delays are read
 * when a process starts, so the target is a child forked after shortening
 * them.
 */
TEST(numa_hinting_restore)
{
	const int n = 64;
	char old_mode[16] = "", old_delay[16] = "", old_min[16] = "";
	int cmd[2], ack[2], pidfd, status, i;
	char *buf = NULL, c;
	pid_t pid;

	if (no_syscall_here())
		SKIP(return, "touched_sweep() not supported");
	if (access("/sys/devices/system/node/node1", F_OK) ||
	    read_file(NUMA_BALANCING, old_mode, sizeof(old_mode)) ||
	    read_file(NUMA_SCAN_DELAY, old_delay, sizeof(old_delay)) ||
	    read_file(NUMA_SCAN_MIN, old_min, sizeof(old_min)))
		SKIP(return, "needs two NUMA nodes, NUMA balancing and debugfs");
	ASSERT_EQ(0, write_file(NUMA_SCAN_DELAY, "0"));
	ASSERT_EQ(0, write_file(NUMA_SCAN_MIN, "10"));
	ASSERT_EQ(0, write_file(NUMA_BALANCING, "1"));
	ASSERT_EQ(0, pipe(cmd));
	ASSERT_EQ(0, pipe(ack));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		int nodes[64], st[64], off = 0;
		void *pages[64];
		double deadline;

		close(cmd[1]);
		close(ack[0]);
		bind_to_node0();
		buf = map_anon(n);
		if (!buf)
			_exit(1);
		memset(buf, 1, n * page_size);
		for (i = 0; i < n; i++) {
			pages[i] = PG(buf, i);
			nodes[i] = 1;
		}
		if (sys_move_pages(n, pages, nodes, st, MPOL_MF_MOVE) ||
		    write(ack[1], &buf, sizeof(buf)) != sizeof(buf) ||
		    read(cmd[0], &c, 1) != 1)
			_exit(1);
		deadline = now_ms() + 20000;
		while (now_ms() < deadline && off < n / 2) {
			read_pages(buf, 0, n);
			off = pages_off_node(buf, n, 1);
		}
		c = off > 0 ? 'h' : 'n';
		if (write(ack[1], &c, 1) != 1 || read(cmd[0], &c, 1) != 1)
			_exit(1);
		for (i = 0; i < n; i += 2)
			write_page(buf, i, 3);
		if (write(ack[1], &c, 1) != 1 || read(cmd[0], &c, 1) != 1)
			_exit(1);
		_exit(0);
	}
	close(cmd[0]);
	close(ack[1]);
	ASSERT_EQ(sizeof(buf), read(ack[0], &buf, sizeof(buf)));
	pidfd = sys_pidfd_open(pid, 0);
	ASSERT_LE(0, pidfd);
	ASSERT_EQ(0, track(pidfd, buf, n * page_size));
	EXPECT_NONE(pidfd, buf, n, CLEAR);
	ASSERT_EQ(1, write(cmd[1], "r", 1));
	ASSERT_EQ(1, read(ack[0], &c, 1));

	write_file(NUMA_BALANCING, old_mode);
	write_file(NUMA_SCAN_DELAY, old_delay);
	write_file(NUMA_SCAN_MIN, old_min);
	if (c != 'h') {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		SKIP(return, "NUMA balancing moved no page within 20 s");
	}
	/* Hinting entries were restored by reads: nothing written. */
	EXPECT_NONE(pidfd, buf, n, PEEK);
	ASSERT_EQ(1, write(cmd[1], "w", 1));
	ASSERT_EQ(1, read(ack[0], &c, 1));
	for (i = 0; i < n; i++) {
		if (i % 2)
			EXPECT_NONE(pidfd, PG(buf, i), 1, PEEK);
		else
			EXPECT_PAGES(pidfd, PG(buf, i), 1, PEEK, { 0, 1, TOUCHED });
	}
	ASSERT_EQ(1, write(cmd[1], "x", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	close(pidfd);
}

/* ---- Out of scope, as documented -------------------------------------- */

/*
 * Shared memory written through another process's mapping changes what
 * the tracked mapping shows without going through its page tables: not
 * reported, as with soft-dirty.  The test pins the documented behaviour.
 */
TEST_F(ts, out_of_scope_shared_write_by_other_process)
{
	const long n = 4;
	int fd, status;
	char *buf;
	pid_t pid;

	buf = map_memfd(n, &fd);
	ASSERT_NE(NULL, buf);
	memset(buf, 1, n * page_size);
	ASSERT_EQ(0, track(self->pidfd, buf, n * page_size));

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		/* The child's mapping is its own and untracked. */
		write_page(buf, 2, 9);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(9, read_page(buf, 2));
	EXPECT_NONE(self->pidfd, buf, n, PEEK);
	close(fd);
}

/* write(2) into the page cache behind a file mapping: not reported either. */
TEST_F(ts, out_of_scope_write_into_page_cache)
{
	const long n = 4;
	char path[] = "/tmp/ts-oos-XXXXXX", data[64];
	int fd = mkstemp(path);
	char *buf;

	ASSERT_LE(0, fd);
	unlink(path);
	ASSERT_EQ(0, ftruncate(fd, n * page_size));
	buf = mmap(NULL, n * page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   fd, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, track(self->pidfd, buf, n * page_size));
	read_pages(buf, 0, n);

	memset(data, 7, sizeof(data));
	ASSERT_EQ((ssize_t)sizeof(data), pwrite(fd, data, sizeof(data), page_size));
	ASSERT_EQ(7, read_page(buf, 1));
	EXPECT_NONE(self->pidfd, buf, n, PEEK);
	/* A store through the mapping is reported, of course. */
	write_page(buf, 3, 1);
	EXPECT_PAGES(self->pidfd, buf, n, PEEK, { 3, 4, TOUCHED });
	close(fd);
}

/* ---- Leaks ------------------------------------------------------------ */

#define SLAB_DIR	"/sys/kernel/slab"

/* Objects in use in @cache, after returning per-CPU slabs to the lists. */
static long slab_objects(const char *cache)
{
	char path[128], buf[256];

	snprintf(path, sizeof(path), SLAB_DIR "/%s/shrink", cache);
	write_file(path, "1");
	snprintf(path, sizeof(path), SLAB_DIR "/%s/objects", cache);
	if (read_file(path, buf, sizeof(buf)))
		return -1;
	return atol(buf);
}

/*
 * A process that tracks, splits, moves and unmaps tracked memory and then
 * exits leaves no tracking state behind.  VMAs are freed after an RCU grace
 * period, so the counts are polled for a while.
 */
TEST(no_leak_after_exit)
{
	long vmas0 = slab_objects("touched_vma"), mms0 = slab_objects("touched_mm");
	long vmas = 0, mms = 0;
	int ready[2], go[2], status, pidfd;
	double deadline;
	char c = 0;
	pid_t pid;

	if (no_syscall_here())
		SKIP(return, "touched_sweep() not supported");
	if (vmas0 < 0 || mms0 < 0)
		SKIP(return, "no " SLAB_DIR "/touched_vma");
	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		const long n = 64;
		char *buf = map_anon(n + 8);
		long i;

		close(ready[0]);
		close(go[1]);
		pidfd = sys_pidfd_open(getpid(), 0);
		if (!buf || pidfd < 0 || track(pidfd, buf, n * page_size))
			_exit(1);
		for (i = 0; i < n; i += 4)
			mprotect(PG(buf, i), page_size, PROT_READ);
		for (i = 1; i < n; i += 3)
			if (i % 4)
				write_page(buf, i, 1);
		munmap(PG(buf, 8), 4 * page_size);
		if (mremap(PG(buf, 21), 2 * page_size, 2 * page_size,
			   MREMAP_MAYMOVE | MREMAP_FIXED, PG(buf, n)) == MAP_FAILED)
			_exit(2);
		if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(3);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	ASSERT_EQ(1, read(ready[0], &c, 1)) {
		waitpid(pid, &status, 0);
		TH_LOG("the child failed: status %#x", status);
	}
	vmas = slab_objects("touched_vma");
	mms = slab_objects("touched_mm");
	TH_LOG("touched_vma %ld -> %ld, touched_mm %ld -> %ld while alive",
	       vmas0, vmas, mms0, mms);
	EXPECT_LT(vmas0 + 16, vmas);
	EXPECT_EQ(mms0 + 1, mms);
	ASSERT_EQ(1, write(go[1], &c, 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));

	deadline = now_ms() + 10000;
	do {
		usleep(50000);
		vmas = slab_objects("touched_vma");
		mms = slab_objects("touched_mm");
	} while ((vmas != vmas0 || mms != mms0) && now_ms() < deadline);
	EXPECT_EQ(vmas0, vmas);
	EXPECT_EQ(mms0, mms);
}

/*
 * TRACK then UNTRACK, in pieces and across splits, in a process that keeps
 * running: every touched_vma allocated is freed again.
 */
static long touched_vma_objects(void)
{
	return slab_objects("touched_vma");
}

/* Poll @count() until it is within @slack of @want, for up to @ms. */
static long settle(long (*count)(void), long want, long slack, double ms)
{
	double deadline = now_ms() + ms;
	long got = count();

	while (labs(got - want) > slack && now_ms() < deadline) {
		usleep(50000);
		got = count();
	}
	return got;
}

TEST_F(ts, untrack_frees_tracking_state)
{
	long base = touched_vma_objects(), mms = slab_objects("touched_mm");
	const long n = 400;
	char *buf = map_anon(n);

	if (base < 0)
		SKIP(return, "no " SLAB_DIR "/touched_vma");
	ASSERT_NE(NULL, buf);
	memset(buf, 1, n * page_size);

	/* Three tracked VMAs, the last with a bitmap of its own... */
	ASSERT_EQ(0, track(self->pidfd, buf, 8 * page_size));
	ASSERT_EQ(0, track(self->pidfd, PG(buf, 16), 24 * page_size));
	ASSERT_EQ(0, track(self->pidfd, PG(buf, 100), 300 * page_size));
	/* ...and two more from a split. */
	ASSERT_EQ(0, mprotect(PG(buf, 20), page_size, PROT_READ));
	write_page(buf, 1, 2);
	write_page(buf, 30, 2);
	write_page(buf, 150, 2);
	write_page(buf, 250, 2);
	EXPECT_EQ(base + 5, settle(touched_vma_objects, base + 5, 0, 5000));
	TH_LOG("touched_vma %ld -> %ld, touched_mm %ld -> %ld while tracked",
	       base, touched_vma_objects(), mms, slab_objects("touched_mm"));

	/* Untracking a part splits: as many VMAs stay tracked. */
	ASSERT_EQ(0, untrack(self->pidfd, PG(buf, 200), 200 * page_size));
	EXPECT_EQ(base + 5, settle(touched_vma_objects, base + 5, 0, 5000));
	ASSERT_EQ(0, untrack(self->pidfd, PG(buf, 100), 100 * page_size));
	EXPECT_EQ(base + 4, settle(touched_vma_objects, base + 4, 0, 5000));
	ASSERT_EQ(0, untrack(self->pidfd, buf, 8 * page_size));
	ASSERT_EQ(0, untrack(self->pidfd, PG(buf, 16), 24 * page_size));
	EXPECT_EQ(base, settle(touched_vma_objects, base, 0, 10000));
	EXPECT_NONE(self->pidfd, buf, n, PEEK);
}

/*
 * Bitmaps of the marks, which may be large: over 8 KiB and not a power of
 * two they come from vmalloc(), otherwise from kmalloc() (large kmalloc
 * for a power of two, a kmalloc cache below a page).  Each variant tracks
 * @n VMAs of @pages pages (address space only, nothing populated) and
 * counts the allocations it should have made: @per_vma each, give or take
 * @slack made by others.  They must all go by UNTRACK, munmap() or exit.
 */
#define VMALLOCINFO	"/proc/vmallocinfo"

/*
 * vmalloc() areas allocated by touched_sweep code, which are marks only.
 * The caller shown is touched_marks_alloc() or whatever it was inlined in.
 */
static long vmalloc_marks(void)
{
	FILE *f = fopen(VMALLOCINFO, "re");
	char *line = NULL;
	size_t cap = 0;
	long n = 0;

	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0)
		if (strstr(line, " touched_"))
			n++;
	free(line);
	fclose(f);
	return n;
}

/* Objects of the 1 KiB kmalloc cache: accounted ones have their own with memcg. */
static long kmalloc_1k_objects(void)
{
	if (!access(SLAB_DIR "/kmalloc-cg-1k", F_OK))
		return slab_objects("kmalloc-cg-1k");
	return slab_objects("kmalloc-1k");
}

/* @n VMAs of @pages pages, each followed by a hole, each tracked alone. */
static char *track_many(int pidfd, long n, long pages)
{
	size_t stride = (pages + 1) * page_size;
	char *buf = mmap(NULL, n * stride, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	long i;

	if (buf == MAP_FAILED)
		return NULL;
	for (i = 0; i < n; i++)
		if (munmap(buf + i * stride + pages * page_size, page_size) ||
		    track(pidfd, buf + i * stride, pages * page_size))
			return NULL;
	return buf;
}

static int untrack_many(int pidfd, char *buf, long n, long pages)
{
	size_t stride = (pages + 1) * page_size;
	long i;

	for (i = 0; i < n; i++)
		if (untrack(pidfd, buf + i * stride, pages * page_size))
			return -1;
	return 0;
}

FIXTURE(marks)
{
	int pidfd;
	long pages;	/* of each VMA */
	long base;	/* the count before tracking */
};

/*
 * @n VMAs of @pages pages each, or, where @bitmap_pages is set, of as many
 * pages as make a bitmap of that many pages: kmalloc() serves up to two.
 */
FIXTURE_VARIANT(marks)
{
	long (*count)(void);
	long n;
	long pages;
	long bitmap_pages;
	long per_vma;
	long slack;
};

/* Bitmaps of 3 pages (384 MiB with 4 KiB pages): vmalloc()ed. */
FIXTURE_VARIANT_ADD(marks, vmalloc)
{
	.count = vmalloc_marks, .n = 3, .bitmap_pages = 3, .per_vma = 1,
};

/* Bitmaps of 4 pages, a power of two: kmalloc()ed, not vmalloc()ed. */
FIXTURE_VARIANT_ADD(marks, power_of_two_not_vmalloc)
{
	.count = vmalloc_marks, .n = 2, .bitmap_pages = 4, .per_vma = 0,
};

/* 32 MiB: 1 KiB bitmaps, from the 1 KiB kmalloc cache. */
FIXTURE_VARIANT_ADD(marks, kmalloc_1k)
{
	.count = kmalloc_1k_objects, .n = 512, .pages = 8192, .per_vma = 1,
	.slack = 16,
};

FIXTURE_SETUP(marks)
{
	self->pidfd = sys_pidfd_open(getpid(), 0);
	ASSERT_GE(self->pidfd, 0);
	if (no_syscall(self->pidfd))
		SKIP(return, "touched_sweep() not supported");
	self->pages = variant->bitmap_pages ?
		variant->bitmap_pages * page_size * 8 : variant->pages;
	self->base = variant->count();
	if (self->base < 0)
		SKIP(return, "cannot count (" VMALLOCINFO ", " SLAB_DIR ")");
}

FIXTURE_TEARDOWN(marks)
{
	close(self->pidfd);
}

/* With the VMAs tracked, the count went up by @want, give or take @slack. */
static void expect_rise(struct __test_metadata *_metadata, long base,
			long got, long want, long slack)
{
	TH_LOG("%ld -> %ld (%+ld) while tracked, %ld expected", base, got,
	       got - base, want);
	EXPECT_TRUE(got - base >= want && got - base <= want + slack);
}

/* The count comes back to @base, give or take @slack. */
static void expect_settles(struct __test_metadata *_metadata,
			   long (*count)(void), long base, long slack,
			   const char *how)
{
	long got = settle(count, base, slack, 30000);

	TH_LOG("%s: %ld (%+ld)", how, got, got - base);
	EXPECT_GE(slack, labs(got - base));
}

#define EXPECT_MARKS_RISE()						\
	expect_rise(_metadata, self->base, variant->count(),		\
		    variant->n * variant->per_vma, variant->slack)

#define EXPECT_MARKS_FREED(how)						\
	expect_settles(_metadata, variant->count, self->base,		\
		       variant->slack, how)

TEST_F_TIMEOUT(marks, freed_by_untrack, 300)
{
	char *buf = track_many(self->pidfd, variant->n, self->pages);

	ASSERT_NE(NULL, buf);
	EXPECT_MARKS_RISE();
	ASSERT_EQ(0, untrack_many(self->pidfd, buf, variant->n, self->pages));
	EXPECT_MARKS_FREED("after UNTRACK");
}

TEST_F_TIMEOUT(marks, freed_by_munmap, 300)
{
	char *buf = track_many(self->pidfd, variant->n, self->pages);

	ASSERT_NE(NULL, buf);
	EXPECT_MARKS_RISE();
	ASSERT_EQ(0, munmap(buf, variant->n * (self->pages + 1) * page_size));
	EXPECT_MARKS_FREED("after munmap");
}

TEST_F_TIMEOUT(marks, freed_at_exit, 300)
{
	int ready[2], go[2], status, pidfd;
	char c = 0;
	pid_t pid;

	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		close(ready[0]);
		close(go[1]);
		pidfd = sys_pidfd_open(getpid(), 0);
		if (pidfd < 0 || !track_many(pidfd, variant->n, self->pages))
			_exit(1);
		if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	ASSERT_EQ(1, read(ready[0], &c, 1)) {
		waitpid(pid, &status, 0);
		TH_LOG("the child failed: status %#x", status);
	}
	EXPECT_MARKS_RISE();
	ASSERT_EQ(1, write(go[1], &c, 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	EXPECT_MARKS_FREED("after exit");
}

TEST_HARNESS_MAIN
