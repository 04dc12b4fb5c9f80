// SPDX-License-Identifier: GPL-2.0
/*
 * Allocation failures in touched_sweep(2) and in the VMA operations that
 * carry tracking state never lose a write.
 *
 * Each case sets up tracked memory with known written pages in a fresh
 * child process and runs one operation with the Nth fault-injection point
 * of the calling thread failing (/proc/thread-self/fail-nth), for N = 1,
 * 2, ... until the operation completes without reaching an Nth point.
 * After each run, without injection:
 *
 * - the operation succeeded or failed with ENOMEM;
 * - a clearing sweep of the whole address space reports every page written
 *   since the last clearing sweep, as TOUCHED or inside a GONE range, and
 *   every range that left tracking as GONE;
 * - tracking still works: one more write is reported, exactly.
 *
 * Reporting more than was written is allowed, and counted: pages reported
 * but not written, and GONE ranges covering the whole window, which is how
 * the kernel reports a range it could not record as gone.
 *
 * The "own" variant fails only touched_sweep()'s allocations
 * (CONFIG_FAIL_TOUCHED_SWEEP); the "any" variant also fails every slab and
 * page allocation of the mm code that the operation runs (failslab and
 * fail_page_alloc, which by default skip allocations that may sleep):
 * VMAs, maple tree nodes, anon_vmas, page tables.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/touched_sweep.h>

#include "../kselftest_harness.h"
#include "touched_sweep_helpers.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

#define DEBUGFS		"/sys/kernel/debug"
#define NR_PAGES	32
/* Pages [TRACK_FIRST, TRACK_END) of the region are tracked. */
#define TRACK_FIRST	4
#define TRACK_END	28
#define MAX_ENTRIES	256
/* More fault points than any one operation reaches. */
#define MAX_NTH		400

static long page_size;

static char *pg(char *base, long nr)
{
	return base + nr * page_size;
}

static long op_range(int pidfd, __u32 op, const void *start, const void *end)
{
	struct touched_sweep_args args = {
		.size = sizeof(args),
		.op = op,
		.start = (uintptr_t)start,
		.end = (uintptr_t)end,
	};

	return sys_touched_sweep(pidfd, &args);
}

/* One clearing sweep call of [*addr, end): entries stored, or -1. */
static long sweep_once(int pidfd, __u64 *addr, __u64 end, __u32 flags,
		       struct touched_range *vec, __u64 vec_len)
{
	struct touched_sweep_args args = {
		.size = sizeof(args),
		.op = TOUCHED_SWEEP_OP_SWEEP,
		.flags = flags,
		.start = *addr,
		.end = end,
		.vec = (uintptr_t)vec,
		.vec_len = vec_len,
	};
	long ret = sys_touched_sweep(pidfd, &args);

	if (ret >= 0)
		*addr = args.walk_end;
	return ret;
}

/* The whole user address space, as a window: [0, user_end). */
static __u64 user_end;

/* Sweep (and clear) all of the address space; -1 with errno on failure. */
static int sweep_all(int pidfd, struct touched_range *out, int max)
{
	__u64 addr = 0;
	int n = 0;
	long got;

	while (addr < user_end) {
		if (n == max) {
			errno = ENOSPC;
			return -1;
		}
		got = sweep_once(pidfd, &addr, user_end, TOUCHED_SWEEP_CLEAR,
				 out + n, max - n);
		if (got < 0)
			return -1;
		n += got;
	}
	return n;
}

static int write_str(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t len = strlen(val), ret;

	if (fd < 0)
		return -1;
	ret = write(fd, val, len);
	close(fd);
	return ret == len ? 0 : -1;
}

static int read_str(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t ret;

	if (fd < 0)
		return -1;
	ret = read(fd, buf, size - 1);
	close(fd);
	if (ret < 0)
		return -1;
	buf[ret] = 0;
	return 0;
}

/* ---- One case in a child ---------------------------------------------- */

enum fault_op {
	OP_TRACK,		/* opt in: mm state, VMA state, marks, splits */
	OP_UNTRACK,		/* opt out of the middle: two splits */
	OP_MPROTECT,		/* split of a tracked VMA with marks */
	OP_MUNMAP,		/* split, and a record of the range gone */
	OP_MAP_FIXED,		/* a mapping over tracked memory */
	OP_MREMAP,		/* move: state for the new VMA, a gone record */
	OP_MREMAP_DONTUNMAP,	/* the source stays mapped, its pages gone */
	OP_SWEEP,		/* the sweep's buffer, forgetting gone records */
	NR_OPS
};

static const char * const op_names[NR_OPS] = {
	"track", "untrack", "mprotect", "munmap", "map_fixed", "mremap",
	"mremap_dontunmap", "sweep",
};

/* Pages written before the operation, all inside the tracked part. */
static const int written[] = { 5, 9, 10, 17, 21, 25, 27 };

/* What a child saw, for the parent to add up. */
struct fault_result {
	int fired;	/* the Nth fault point was reached and failed */
	int err;	/* errno of the operation, 0 if it succeeded */
	int extra;	/* pages reported touched but not written */
	int whole;	/* GONE ranges covering the whole window */
	char why[160];	/* what went wrong, empty if nothing */
};

struct fault_case {
	int pidfd;
	char *base;	/* the region, NR_PAGES pages */
	char *dst;	/* where mremap moves pages to, NR_PAGES pages */
	int nr_op;	/* entries of OP_SWEEP in @vec */
	struct touched_range vec[MAX_ENTRIES];
};

static bool covered(const struct touched_range *v, int n, __u64 start,
		    __u64 end, __u64 flag)
{
	int i;

	for (i = 0; i < n && start < end; i++) {
		if (!(v[i].flags & flag) || v[i].end <= start ||
		    v[i].start > start)
			continue;
		start = v[i].end;
	}
	return start >= end;
}

static bool was_written(const struct fault_case *c, __u64 addr)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(written); i++)
		if (addr == (uintptr_t)pg(c->base, written[i]))
			return true;
	return false;
}

static int fail(struct fault_result *r, const char *why, long arg)
{
	snprintf(r->why, sizeof(r->why), "%s (%ld, errno %d)", why, arg,
		 errno);
	return -1;
}

/* Set up the case's memory: tracked unless @op is OP_TRACK. */
static int setup(struct fault_case *c, enum fault_op op,
		 struct fault_result *r)
{
	size_t i;

	c->pidfd = sys_pidfd_open(getpid(), 0);
	c->base = mmap(NULL, NR_PAGES * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	c->dst = mmap(NULL, NR_PAGES * page_size, PROT_NONE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->pidfd < 0 || c->base == MAP_FAILED || c->dst == MAP_FAILED)
		return fail(r, "setup", 0);
	memset(c->base, 1, NR_PAGES * page_size);
	if (op != OP_TRACK &&
	    op_range(c->pidfd, TOUCHED_SWEEP_OP_TRACK, pg(c->base, TRACK_FIRST),
		     pg(c->base, TRACK_END)))
		return fail(r, "track", 0);
	for (i = 0; i < ARRAY_SIZE(written); i++)
		c->base[written[i] * page_size] = 2;
	if (op == OP_SWEEP && munmap(pg(c->base, 14), page_size))
		return fail(r, "munmap", 14);
	return 0;
}

static long run_op(struct fault_case *c, enum fault_op op)
{
	switch (op) {
	case OP_TRACK:
		return op_range(c->pidfd, TOUCHED_SWEEP_OP_TRACK,
				pg(c->base, TRACK_FIRST),
				pg(c->base, TRACK_END));
	case OP_UNTRACK:
		return op_range(c->pidfd, TOUCHED_SWEEP_OP_UNTRACK,
				pg(c->base, 12), pg(c->base, 16));
	case OP_MPROTECT:
		return mprotect(pg(c->base, 8), 4 * page_size, PROT_READ);
	case OP_MUNMAP:
		return munmap(pg(c->base, 16), 4 * page_size);
	case OP_MAP_FIXED:
		return mmap(pg(c->base, 20), 4 * page_size,
			    PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
		       MAP_FAILED ? -1 : 0;
	case OP_MREMAP:
	case OP_MREMAP_DONTUNMAP:
		return mremap(pg(c->base, 8), 4 * page_size, 4 * page_size,
			      MREMAP_MAYMOVE | MREMAP_FIXED |
			      (op == OP_MREMAP ? 0 : MREMAP_DONTUNMAP),
			      c->dst) == MAP_FAILED ? -1 : 0;
	case OP_SWEEP:
		c->nr_op = sweep_all(c->pidfd, c->vec, MAX_ENTRIES / 2);
		return c->nr_op < 0 ? -1 : 0;
	default:
		return -1;
	}
}

/*
 * What must be reported after @op ran (or failed with @err): every written
 * page of the tracked part, and the ranges that left tracking.
 */
static int verify(struct fault_case *c, enum fault_op op, int err,
		  struct fault_result *r)
{
	__u64 moved = (uintptr_t)pg(c->base, 8), moved_end = moved + 4 * page_size;
	__u64 dst = (uintptr_t)c->dst, dst_end = dst + 4 * page_size;
	__u64 p, gone = 0, gone_end = 0;
	int i, n;

	if (op == OP_TRACK && err &&
	    op_range(c->pidfd, TOUCHED_SWEEP_OP_TRACK, pg(c->base, TRACK_FIRST),
		     pg(c->base, TRACK_END)))
		return fail(r, "tracking again after the failure", 0);
	if (op == OP_TRACK) {
		/* Tracked pages start clean: write them again. */
		for (i = 0; i < (int)ARRAY_SIZE(written); i++)
			c->base[written[i] * page_size] = 3;
	}
	if (op == OP_SWEEP && !err) {
		/* The sweep that ran with a failure reported everything... */
		for (i = 0; i < (int)ARRAY_SIZE(written); i++) {
			p = (uintptr_t)pg(c->base, written[i]);
			if (!covered(c->vec, c->nr_op, p, p + page_size,
				     TOUCHED_RANGE_TOUCHED))
				return fail(r, "written page not reported",
					    written[i]);
		}
		p = (uintptr_t)pg(c->base, 14);
		if (!covered(c->vec, c->nr_op, p, p + page_size,
			     TOUCHED_RANGE_GONE))
			return fail(r, "range not reported gone", 14);
		/* ... and cleared it, or reports it again: counted. */
		n = sweep_all(c->pidfd, c->vec + MAX_ENTRIES / 2,
			      MAX_ENTRIES / 2);
		if (n < 0)
			return fail(r, "sweep", 0);
		for (i = 0; i < n; i++) {
			struct touched_range *v = c->vec + MAX_ENTRIES / 2 + i;

			if (v->end - v->start >= user_end / 2)
				r->whole++;
			else if (v->flags & TOUCHED_RANGE_GONE)
				r->extra += (v->end - v->start) / page_size;
			else
				return fail(r, "touched after a clearing sweep",
					    (v->start - (uintptr_t)c->base) /
					    page_size);
		}
		goto live;
	}

	n = sweep_all(c->pidfd, c->vec, MAX_ENTRIES);
	if (n < 0)
		return fail(r, "sweep", 0);

	if (!err) {
		switch (op) {
		case OP_MUNMAP:
			gone = (uintptr_t)pg(c->base, 16);
			gone_end = gone + 4 * page_size;
			break;
		case OP_MAP_FIXED:
			gone = (uintptr_t)pg(c->base, 20);
			gone_end = gone + 4 * page_size;
			break;
		case OP_MREMAP:
		case OP_MREMAP_DONTUNMAP:
			gone = moved;
			gone_end = moved_end;
			break;
		default:
			break;
		}
	} else if (op == OP_SWEEP) {
		gone = (uintptr_t)pg(c->base, 14);
		gone_end = gone + page_size;
	}
	if (gone && !covered(c->vec, n, gone, gone_end, TOUCHED_RANGE_GONE))
		return fail(r, "range not reported gone",
			    (gone - (uintptr_t)c->base) / page_size);

	for (i = 0; i < (int)ARRAY_SIZE(written); i++) {
		p = (uintptr_t)pg(c->base, written[i]);
		/* Untracked by the operation: not reported, by design. */
		if (op == OP_UNTRACK && !err && written[i] >= 12 &&
		    written[i] < 16)
			continue;
		if (!covered(c->vec, n, p, p + page_size,
			     TOUCHED_RANGE_TOUCHED | TOUCHED_RANGE_GONE))
			return fail(r, "written page not reported", written[i]);
	}

	for (i = 0; i < n; i++) {
		if (c->vec[i].end - c->vec[i].start >= user_end / 2) {
			r->whole++;
			continue;
		}
		if (c->vec[i].flags & TOUCHED_RANGE_GONE)
			continue;
		for (p = c->vec[i].start; p < c->vec[i].end; p += page_size) {
			/* A moved range starts touched in full. */
			if ((op == OP_MREMAP || op == OP_MREMAP_DONTUNMAP) &&
			    !err && p >= dst && p < dst_end)
				continue;
			if (!was_written(c, p))
				r->extra++;
		}
	}

live:
	/* Tracking still works, exactly. */
	c->base[5 * page_size] = 4;
	n = sweep_all(c->pidfd, c->vec, MAX_ENTRIES);
	if (n != 1 || c->vec[0].start != (uintptr_t)pg(c->base, 5) ||
	    c->vec[0].end != (uintptr_t)pg(c->base, 6) ||
	    c->vec[0].flags != TOUCHED_RANGE_TOUCHED)
		return fail(r, "one write after recovery: entries", n);
	return 0;
}

/* Run @op with the @nth fault point failing; report through @r. */
static void run_case(enum fault_op op, int nth, struct fault_result *r)
{
	static struct fault_case c;
	char buf[32] = "";
	ssize_t len;
	long ret;
	int fd;

	/*
	 * Open fail-nth first: once armed, any call that reaches a fault
	 * point counts, and opening a file allocates.
	 */
	fd = open("/proc/thread-self/fail-nth", O_RDWR);
	if (fd < 0 || setup(&c, op, r)) {
		fail(r, "setup", nth);
		return;
	}
	len = snprintf(buf, sizeof(buf), "%d", nth);
	if (pwrite(fd, buf, len, 0) != len) {
		fail(r, "cannot arm fail-nth", nth);
		return;
	}
	ret = run_op(&c, op);
	r->err = ret < 0 ? errno : 0;
	len = pread(fd, buf, sizeof(buf) - 1, 0);
	buf[len > 0 ? len : 0] = 0;
	/* What is left of the count: 0 once the Nth point failed. */
	r->fired = len > 0 && atoi(buf) == 0;
	if (len <= 0 || pwrite(fd, "0", 1, 0) != 1) {
		fail(r, "cannot read or disarm fail-nth", nth);
		return;
	}
	close(fd);
	if (r->err && r->err != ENOMEM) {
		errno = r->err;
		fail(r, "the operation failed with an undocumented errno", nth);
		return;
	}
	if (r->err && !r->fired) {
		errno = r->err;
		fail(r, "the operation failed without an injected failure", nth);
		return;
	}
	verify(&c, op, r->err, r);
}

/* ---- The tests ----------------------------------------------------------- */

struct knob {
	const char *path;
	char saved[32];
};

FIXTURE(fault) {
	struct fault_result *shared;
};

FIXTURE_VARIANT(fault) {
	bool any;	/* fail the mm code's allocations as well */
};

FIXTURE_VARIANT_ADD(fault, own) {
	.any = false,
};

FIXTURE_VARIANT_ADD(fault, any) {
	.any = true,
};

/* The knobs the test changed, with their old values for teardown. */
static struct knob knobs[8];
static int nr_knobs;

static void set_knob(const char *path, const char *value)
{
	struct knob *k = &knobs[nr_knobs];

	if (read_str(path, k->saved, sizeof(k->saved)) ||
	    write_str(path, value))
		return;
	k->path = path;
	nr_knobs++;
}

FIXTURE_SETUP(fault)
{
	int pidfd;

	page_size = sysconf(_SC_PAGESIZE);
	pidfd = sys_pidfd_open(getpid(), 0);
	ASSERT_LE(0, pidfd);
	if (!touched_sweep_present(pidfd))
		SKIP(return, "touched_sweep() not supported");
	user_end = touched_sweep_user_end(pidfd);
	close(pidfd);
	if (access(DEBUGFS "/fail_touched_sweep", F_OK))
		SKIP(return, "needs CONFIG_FAIL_TOUCHED_SWEEP and debugfs");
	if (access("/proc/thread-self/fail-nth", W_OK))
		SKIP(return, "no /proc/thread-self/fail-nth");
	/* The failures are expected: keep them off the console. */
	set_knob(DEBUGFS "/fail_touched_sweep/verbose", "0");
	if (!variant->any) {
		/*
		 * fail-nth counts every fault point reached; these make the
		 * slab and page allocators reach none.
		 */
		set_knob(DEBUGFS "/failslab/cache-filter", "Y");
		set_knob(DEBUGFS "/fail_page_alloc/min-order", "20");
	} else {
		set_knob(DEBUGFS "/failslab/cache-filter", "N");
		set_knob(DEBUGFS "/failslab/verbose", "0");
		set_knob(DEBUGFS "/failslab/ignore-gfp-wait", "N");
		set_knob(DEBUGFS "/fail_page_alloc/verbose", "0");
		set_knob(DEBUGFS "/fail_page_alloc/ignore-gfp-wait", "N");
		set_knob(DEBUGFS "/fail_page_alloc/min-order", "0");
		if (nr_knobs != 7)
			SKIP(return, "needs CONFIG_FAILSLAB and CONFIG_FAIL_PAGE_ALLOC");
	}
	self->shared = mmap(NULL, sizeof(*self->shared),
			    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			    -1, 0);
	ASSERT_NE(MAP_FAILED, self->shared);
}

FIXTURE_TEARDOWN(fault)
{
	int i;

	for (i = nr_knobs - 1; i >= 0; i--)
		write_str(knobs[i].path, knobs[i].saved);
	nr_knobs = 0;
}

TEST_F_TIMEOUT(fault, every_fault_point, 1800)
{
	int op, nth, status, points, enomem, extra, whole, total = 0;
	struct fault_result *r = self->shared;
	pid_t pid;

	for (op = 0; op < NR_OPS; op++) {
		points = 0;
		enomem = 0;
		extra = 0;
		whole = 0;
		for (nth = 1; nth <= MAX_NTH; nth++) {
			memset(r, 0, sizeof(*r));
			pid = fork();
			ASSERT_LE(0, pid);
			if (!pid) {
				run_case(op, nth, r);
				_exit(r->why[0] ? 1 : 0);
			}
			ASSERT_EQ(pid, waitpid(pid, &status, 0));
			EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status)) {
				TH_LOG("%s, fault point %d: %s (status %#x)",
				       op_names[op], nth, r->why, status);
			}
			if (!r->fired)
				break;
			points++;
			enomem += r->err == ENOMEM;
			extra += r->extra;
			whole += r->whole;
		}
		EXPECT_GT(nth, 1) {
			TH_LOG("%s: no fault point reached", op_names[op]);
		}
		EXPECT_LE(nth, MAX_NTH);
		TH_LOG("%-16s %3d fault points, %3d ENOMEM, over-reported: %4d pages, %2d windows",
		       op_names[op], points, enomem, extra, whole);
		total += points;
	}
	TH_LOG("%d injected failures in all", total);
}

TEST_HARNESS_MAIN
