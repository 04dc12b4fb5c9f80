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
 * struct touched_range - one coalesced range reported by a sweep
 * @start: page-aligned start address
 * @end: page-aligned end address (exclusive)
 * @flags: TOUCHED_RANGE_* flags shared by every page in the range
 *
 * TOUCHED_RANGE_GONE marks a range that was tracked and has since been
 * unmapped, moved by mremap() or mapped over: its old contents are no
 * longer at this address; it is always reported alone.
 * TOUCHED_RANGE_OVERREPORTED comes with TOUCHED from clearing sweeps only,
 * for touched pages whose marks could not be cleared (pinned for DMA,
 * lazily freed by MADV_FREE, or under migration): the next sweep reports
 * them again whether or not they are written.
 */
struct touched_range {
	__u64 start;
	__u64 end;
	__u64 flags;
};

/**
 * struct touched_sweep_args - arguments of touched_sweep()
 * @size: sizeof(struct touched_sweep_args) as known to the caller
 * @op: one of TOUCHED_SWEEP_OP_*
 * @flags: TOUCHED_SWEEP_* flags for @op; must be zero for other ops
 * @start: page-aligned start of the window
 * @end: page-aligned end of the window (exclusive); @start == @end is an
 *	empty window and does nothing
 * @vec: user address of an array of struct touched_range (sweep only)
 * @vec_len: number of entries in @vec (sweep only)
 * @walk_end: output: the address the sweep stopped at; @end when the whole
 *	window was swept, otherwise the @start of the next call
 *
 * @size comes first so that the structure can grow: the kernel accepts
 * any @size from TOUCHED_SWEEP_ARGS_SIZE_VER0 up to one page, provided the
 * bytes it does not know are zero (see copy_struct_from_user()).
 *
 * A successful sweep returns the number of entries written to @vec; the
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
