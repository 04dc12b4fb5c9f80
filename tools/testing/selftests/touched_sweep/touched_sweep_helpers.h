/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every touched_sweep(2) selftest needs: the system call numbers for
 * older headers, thin syscall() wrappers, and the check that the kernel
 * really has touched_sweep() before any test sends it arguments.
 */
#ifndef TOUCHED_SWEEP_HELPERS_H
#define TOUCHED_SWEEP_HELPERS_H

#include <stdbool.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/touched_sweep.h>

#ifndef __NR_touched_sweep
#define __NR_touched_sweep 463
#endif

#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif

static inline long sys_touched_sweep(int pidfd,
				     struct touched_sweep_args *args)
{
	return syscall(__NR_touched_sweep, pidfd, args);
}

static inline int sys_pidfd_open(pid_t pid, unsigned int flags)
{
	return syscall(__NR_pidfd_open, pid, flags);
}

/* A test-only sweep of the empty window [@addr, @addr): 0 or -1. */
static inline long touched_sweep_empty(int pidfd, __u64 addr, __u64 *walk_end)
{
	struct touched_sweep_args args = {
		.size = sizeof(args),
		.op = TOUCHED_SWEEP_OP_SWEEP,
		.start = addr,
		.end = addr,
	};
	long ret = sys_touched_sweep(pidfd, &args);

	*walk_end = args.walk_end;
	return ret;
}

/*
 * Does this kernel have touched_sweep()?  Only touched_sweep() answers a
 * sweep of an empty window with 0 and stores the window's start as
 * walk_end.  Other kernels can have another system call at this number
 * (setxattrat() since 6.13), which must never see the tests' arguments.
 */
static inline bool touched_sweep_present(int pidfd)
{
	__u64 page = sysconf(_SC_PAGESIZE), walk_end = 0;

	return touched_sweep_empty(pidfd, page, &walk_end) == 0 &&
	       walk_end == page;
}

/*
 * The end of the user address space (TASK_SIZE_MAX), the highest address a
 * window may end at.  It depends on the architecture and the paging mode,
 * so ask: ends up to it are accepted and ends above it are not, and a
 * binary search over page-aligned ends finds it in about 50 calls.  Only a
 * clearing sweep of [0, this) forgets that a GONE record could not be
 * stored.  Without touched_sweep() the answer is one page.
 */
static inline __u64 touched_sweep_user_end(int pidfd)
{
	__u64 page = sysconf(_SC_PAGESIZE), walk_end;
	__u64 good = page, bad = ~(page - 1);

	while (bad - good > page) {
		__u64 mid = good + (((bad - good) / 2) & ~(page - 1));

		if (touched_sweep_empty(pidfd, mid, &walk_end))
			bad = mid;
		else
			good = mid;
	}
	return good;
}

#endif /* TOUCHED_SWEEP_HELPERS_H */
