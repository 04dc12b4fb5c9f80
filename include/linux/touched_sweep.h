/* SPDX-License-Identifier: GPL-2.0 */
/*
 * touched_sweep: per-page write tracking of opted-in VMAs.
 *
 * The hooks below are called from the mm paths that install writable page
 * table entries, zap entries, or change the shape of a VMA.  The fault-time
 * hooks must be called with the page table lock of the entries held: marks
 * are set and cleared under that lock, which is what keeps a racing write
 * from being lost by a sweep.  See Documentation/userspace-api/touched_sweep.rst.
 */
#ifndef _LINUX_TOUCHED_SWEEP_H
#define _LINUX_TOUCHED_SWEEP_H

#include <linux/mm.h>

struct ma_state;
struct touched_vma;

/*
 * State carried through __split_vma(): the marks of both halves are
 * allocated before the rmap locks are taken and swapped in while they are
 * held.
 */
struct touched_split {
#ifdef CONFIG_TOUCHED_SWEEP
	struct touched_vma *lo;
	struct touched_vma *hi;
	struct touched_vma *old;
#endif
};

#ifdef CONFIG_TOUCHED_SWEEP

/**
 * vma_touch_tracked - does @vma track touched pages?
 * @vma: the VMA
 *
 * Return: true if writes to @vma are being tracked.
 */
static inline bool vma_touch_tracked(const struct vm_area_struct *vma)
{
	return vma->vm_flags & VM_TRACK_TOUCHED;
}

void __touched_mark(struct vm_area_struct *vma, unsigned long addr,
		    unsigned long nr);
bool __touched_needs_wp(struct vm_area_struct *vma, unsigned long addr,
			unsigned long nr);

/**
 * touched_mark - mark pages of a tracked VMA touched
 * @vma: the VMA
 * @addr: address of the first page
 * @nr: number of pages
 *
 * Locking: the caller holds the page table lock of the entries mapping
 * [@addr, @addr + @nr * PAGE_SIZE).
 */
static inline void touched_mark(struct vm_area_struct *vma,
				unsigned long addr, unsigned long nr)
{
	if (unlikely(vma_touch_tracked(vma)))
		__touched_mark(vma, addr, nr);
}

/**
 * touched_needs_wp - must these entries stay write-protected?
 * @vma: the VMA
 * @addr: address of the first page
 * @nr: number of pages
 *
 * A tracked page whose mark is clear must not be mapped writable: its next
 * write has to fault so that the fault can mark it.  Paths that upgrade an
 * entry to writable without a write fault (mprotect, NUMA hinting, swap-in,
 * GUP with FOLL_FORCE) ask this first.
 *
 * Locking: the caller holds the page table lock of the entries.
 *
 * Return: true if any of the pages is tracked and not marked.
 */
static inline bool touched_needs_wp(struct vm_area_struct *vma,
				    unsigned long addr, unsigned long nr)
{
	return unlikely(vma_touch_tracked(vma)) &&
	       __touched_needs_wp(vma, addr, nr);
}

static inline void touched_vma_dup_init(struct vm_area_struct *vma)
{
	vma->touched = NULL;
}

void touched_mapping_changed(struct address_space *mapping, pgoff_t first,
			     pgoff_t last);
void touched_vma_free(struct vm_area_struct *vma);
void touched_vma_fork(struct vm_area_struct *child);
int touched_vma_split_prepare(struct vm_area_struct *vma,
			      struct vm_area_struct *new,
			      struct touched_split *ts);
void touched_vma_split_commit(struct vm_area_struct *vma,
			      struct vm_area_struct *new,
			      struct touched_split *ts);
void touched_vma_split_finish(struct touched_split *ts);
int touched_vma_copy(struct vm_area_struct *new);
void touched_vma_link(struct vm_area_struct *new);
void touched_vmas_unmapped(struct mm_struct *mm, struct ma_state *mas_detach);
void touched_range_gone(struct vm_area_struct *vma, unsigned long start,
			unsigned long end);
void touched_mm_init(struct mm_struct *mm);
void touched_mm_free(struct mm_struct *mm);

#else /* !CONFIG_TOUCHED_SWEEP */

static inline bool vma_touch_tracked(const struct vm_area_struct *vma)
{
	return false;
}

static inline void touched_mark(struct vm_area_struct *vma,
				unsigned long addr, unsigned long nr)
{
}

static inline bool touched_needs_wp(struct vm_area_struct *vma,
				    unsigned long addr, unsigned long nr)
{
	return false;
}

static inline void touched_mapping_changed(struct address_space *mapping,
					   pgoff_t first, pgoff_t last)
{
}

static inline void touched_vma_dup_init(struct vm_area_struct *vma) {}
static inline void touched_vma_free(struct vm_area_struct *vma) {}
static inline void touched_vma_fork(struct vm_area_struct *child) {}

static inline int touched_vma_split_prepare(struct vm_area_struct *vma,
					    struct vm_area_struct *new,
					    struct touched_split *ts)
{
	return 0;
}

static inline void touched_vma_split_commit(struct vm_area_struct *vma,
					    struct vm_area_struct *new,
					    struct touched_split *ts)
{
}

static inline void touched_vma_split_finish(struct touched_split *ts) {}

static inline int touched_vma_copy(struct vm_area_struct *new)
{
	return 0;
}

static inline void touched_vma_link(struct vm_area_struct *new) {}
static inline void touched_vmas_unmapped(struct mm_struct *mm,
					 struct ma_state *mas_detach)
{
}

static inline void touched_range_gone(struct vm_area_struct *vma,
				      unsigned long start, unsigned long end)
{
}

static inline void touched_mm_init(struct mm_struct *mm) {}
static inline void touched_mm_free(struct mm_struct *mm) {}

#endif /* CONFIG_TOUCHED_SWEEP */

#endif /* _LINUX_TOUCHED_SWEEP_H */
