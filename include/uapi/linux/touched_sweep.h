/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * touched_sweep(2): find the memory a process wrote since the last sweep.
 *
 * A caller opts a range of a target process (named by a pidfd) into
 * tracking.  From then on, every write through the target's page tables
 * marks the written page "touched" at fault time.  A sweep walks a window
 * of the target's address space, visits only the tracked VMAs that carry
 * touched pages, and returns the touched ranges, optionally clearing the
 * marks (and write-protecting the pages again) in the same step.
 *
 * All operations go through one system call taking an extensible argument
 * structure, so that a new operation or a new field never needs a new
 * system call:
 *
 *	long touched_sweep(int pidfd, struct touched_sweep_args *args);
 *
 * See Documentation/userspace-api/touched_sweep.rst for the semantics.
 */
#ifndef _UAPI_LINUX_TOUCHED_SWEEP_H
#define _UAPI_LINUX_TOUCHED_SWEEP_H

#include <linux/types.h>

/* touched_sweep_args.op */
#define TOUCHED_SWEEP_OP_TRACK		1	/* opt [start, end) in */
#define TOUCHED_SWEEP_OP_UNTRACK	2	/* opt [start, end) out */
#define TOUCHED_SWEEP_OP_SWEEP		3	/* report touched ranges */

/* touched_sweep_args.flags, valid for TOUCHED_SWEEP_OP_SWEEP only */
#define TOUCHED_SWEEP_CLEAR		(1U << 0)	/* test and clear */
#define TOUCHED_SWEEP_FLAGS_MASK	(TOUCHED_SWEEP_CLEAR)

/* touched_range.flags */
#define TOUCHED_RANGE_TOUCHED		(1ULL << 0)	/* written to */
#define TOUCHED_RANGE_GONE		(1ULL << 1)	/* left tracking */
#define TOUCHED_RANGE_OVERREPORTED	(1ULL << 2)	/* kept: reported again */

/**
 * struct touched_range - one range reported by a sweep
 * @start: page-aligned start address
 * @end: page-aligned end address (exclusive), above @start
 * @flags: what happened to every page of [@start, @end): %TOUCHED_RANGE_GONE
 *	alone, %TOUCHED_RANGE_TOUCHED, or %TOUCHED_RANGE_TOUCHED together
 *	with %TOUCHED_RANGE_OVERREPORTED
 *
 * %TOUCHED_RANGE_TOUCHED: the pages were written, or their contents may
 * have changed, since they were tracked or last cleared.
 *
 * %TOUCHED_RANGE_OVERREPORTED comes with %TOUCHED_RANGE_TOUCHED from
 * clearing sweeps only, for touched pages whose marks could not be cleared
 * (for example pinned for DMA, or lazily freed by MADV_FREE): the next
 * clearing sweep reports them again, written or not.
 *
 * %TOUCHED_RANGE_GONE: the range was tracked and has since been unmapped,
 * moved away by mremap() or mapped over, so its old contents are no longer
 * at this address.
 *
 * The ranges of one call are sorted, disjoint, clipped to the window and
 * coalesced: two adjacent ranges never have the same @flags.
 */
struct touched_range {
	__u64 start;
	__u64 end;
	__u64 flags;
};

/**
 * struct touched_sweep_args - arguments of touched_sweep()
 * @size: sizeof(struct touched_sweep_args) as known to the caller, at
 *	least %TOUCHED_SWEEP_ARGS_SIZE_VER0 and at most one page
 * @op: %TOUCHED_SWEEP_OP_TRACK, %TOUCHED_SWEEP_OP_UNTRACK or
 *	%TOUCHED_SWEEP_OP_SWEEP
 * @flags: for %TOUCHED_SWEEP_OP_SWEEP, 0 (test only) or
 *	%TOUCHED_SWEEP_CLEAR (test and clear); 0 for the other operations
 * @start: page-aligned start of the range (track, untrack) or window
 *	(sweep)
 * @end: page-aligned end of the range or window (exclusive), not below
 *	@start and not above the end of the user address space; @start ==
 *	@end is empty and changes nothing
 * @vec: for a sweep, user address of an array of @vec_len
 *	&struct touched_range that receives the result; 0 for the other
 *	operations
 * @vec_len: for a sweep, the number of entries @vec has room for; 0 for
 *	the other operations
 * @walk_end: set by a sweep: the address up to which the window was
 *	processed, @end when all of it was, otherwise the @start of the call
 *	that processes the rest; ignored on input
 *
 * @size comes first so that the structure can grow: the kernel accepts
 * any @size from %TOUCHED_SWEEP_ARGS_SIZE_VER0 up to one page, provided the
 * bytes it does not know are zero (see copy_struct_from_user()).
 *
 * A successful sweep returns the number of entries stored in @vec; the
 * other operations return 0.
 */
struct touched_sweep_args {
	__u64 size;
	__u32 op;
	__u32 flags;
	__u64 start;
	__u64 end;
	__u64 vec;
	__u64 vec_len;
	__u64 walk_end;
};

#define TOUCHED_SWEEP_ARGS_SIZE_VER0	56	/* sizeof first published struct */

#endif /* _UAPI_LINUX_TOUCHED_SWEEP_H */
