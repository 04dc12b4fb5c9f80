// SPDX-License-Identifier: GPL-2.0
/*
 * touched_sweep(2): tell a dumper which memory a process wrote.
 *
 * A caller opts ranges of a target process into tracking, and sweeps a
 * window of its address space for the pages written since the last
 * clearing sweep.  A sweep reports the marks kept by mm/touched_marks.c as
 * coalesced address ranges and, when asked to, clears them and
 * write-protects the pages again under the page table lock, visiting only
 * the tagged VMAs and the marked groups of pages.  Ranges that left
 * tracking are reported "gone".
 *
 * See Documentation/userspace-api/touched_sweep.rst.
 */

#include <linux/err.h>
#include <linux/hugetlb.h>
#include <linux/maple_tree.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/pagewalk.h>
#include <linux/pid.h>
#include <linux/ptrace.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/swap.h>
#include <linux/swapops.h>
#include <linux/syscalls.h>
#include <linux/touched_sweep.h>
#include <linux/uaccess.h>
#include <uapi/linux/touched_sweep.h>

#include <asm/tlb.h>

#include "internal.h"
#include "touched_marks.h"
#include "vma.h"

/*
 * Read the caller's argument structure.  @size is read first so that older
 * and newer callers both work: copy_struct_from_user() zero-fills fields the
 * caller does not know and rejects non-zero fields the kernel does not know.
 */
static int touched_sweep_copy_args(struct touched_sweep_args *args,
				   struct touched_sweep_args __user *uargs)
{
	u64 usize;

	if (get_user(usize, &uargs->size))
		return -EFAULT;
	if (usize < TOUCHED_SWEEP_ARGS_SIZE_VER0)
		return -EINVAL;
	if (usize > PAGE_SIZE)
		return -E2BIG;
	return copy_struct_from_user(args, sizeof(*args), uargs, usize);
}

/* Check everything that does not depend on the target process. */
static int touched_sweep_check_args(const struct touched_sweep_args *args)
{
	switch (args->op) {
	case TOUCHED_SWEEP_OP_TRACK:
	case TOUCHED_SWEEP_OP_UNTRACK:
		if (args->flags || args->vec || args->vec_len)
			return -EINVAL;
		break;
	case TOUCHED_SWEEP_OP_SWEEP:
		if (args->flags & ~TOUCHED_SWEEP_FLAGS_MASK)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}

	if (!PAGE_ALIGNED(args->start) || !PAGE_ALIGNED(args->end))
		return -EINVAL;
	if (args->end < args->start || args->end > TASK_SIZE_MAX)
		return -EINVAL;

	if (args->op == TOUCHED_SWEEP_OP_SWEEP &&
	    !access_ok(u64_to_user_ptr(args->vec),
		       size_mul(args->vec_len, sizeof(struct touched_range))))
		return -EFAULT;

	return 0;
}

/*
 * Resolve @pidfd to the target's mm with a reference on mm_users.  The
 * permission is the one process_vm_readv() and process_vm_writev() check:
 * ptrace attach with the caller's real credentials.
 */
static struct mm_struct *touched_sweep_get_mm(int pidfd)
{
	struct task_struct *task;
	struct mm_struct *mm;
	unsigned int f_flags;

	task = pidfd_get_task(pidfd, &f_flags);
	if (IS_ERR(task))
		return ERR_CAST(task);

	mm = mm_access(task, PTRACE_MODE_ATTACH_REALCREDS);
	put_task_struct(task);

	/* No mm: the task has exited (zombie) or is a kernel thread. */
	if (!mm)
		return ERR_PTR(-ESRCH);
	if (mm == ERR_PTR(-EACCES))
		return ERR_PTR(-EPERM);
	return mm;
}

/*
 * Entries collected under mmap_lock, copied out after dropping it: as many
 * as a page table has entries, as PAGEMAP_SCAN does.
 */
#define TOUCHED_SWEEP_BATCH	PTRS_PER_PTE

/**
 * struct touched_sweep - one sweep in progress
 * @mm: the target mm
 * @tm: its tracking state
 * @clear: test and clear rather than test only
 * @addr: everything below it is done
 * @end: end of the window
 * @buf: kernel buffer of entries, the last one still open for coalescing
 * @count: entries in @buf
 * @cap: entries @buf may hold in this round
 * @tlb: TLB flushes owed by a clearing sweep, issued at the end of each VMA
 */
struct touched_sweep {
	struct mm_struct *mm;
	struct touched_mm *tm;
	bool clear;
	unsigned long addr;
	unsigned long end;
	struct touched_range *buf;
	unsigned long count;
	unsigned long cap;
	struct mmu_gather tlb;
};

/* Can a page at @addr with @flags be reported? */
static bool sweep_fits(struct touched_sweep *s, unsigned long addr, u64 flags)
{
	struct touched_range *last = s->count ? &s->buf[s->count - 1] : NULL;

	if (last && last->end == addr && last->flags == flags)
		return true;
	return s->count < s->cap;
}

/* Report [start, end) with @flags; sweep_fits() said yes. */
static void sweep_emit(struct touched_sweep *s, unsigned long start,
		       unsigned long end, u64 flags)
{
	struct touched_range *last = s->count ? &s->buf[s->count - 1] : NULL;

	if (last && last->end == start && last->flags == flags) {
		last->end = end;
		return;
	}
	s->buf[s->count].start = start;
	s->buf[s->count].end = end;
	s->buf[s->count].flags = flags;
	s->count++;
}

/*
 * Would clearing this entry lose a write?  Pinned pages may be written
 * through the pin at any time, a lazily freed page may be dropped by
 * reclaim without a fault, and writable migration or device entries become
 * writable PTEs without one.  Such pages keep their marks.
 *
 * MADV_FREE leaves a clean entry and a clean folio, but the folio loses
 * PG_swapbacked only when a per-CPU LRU batch drains, which may be after
 * this sweep: test what MADV_FREE leaves behind instead.  Every write
 * fault dirties the entry, so this holds until the page is written again,
 * and reclaim never drops a folio mapped by a dirty entry.
 */
static bool sweep_must_keep(struct vm_area_struct *vma, unsigned long addr,
			    pte_t pte)
{
	struct folio *folio;
	swp_entry_t entry;

	if (pte_present(pte)) {
		folio = vm_normal_folio(vma, addr, pte);
		if (!folio)
			return false;
		return folio_maybe_dma_pinned(folio) ||
		       (!pte_dirty(pte) && folio_test_anon(folio) &&
			!folio_test_dirty(folio) &&
			!folio_test_swapcache(folio));
	}
	if (pte_none(pte) || !is_swap_pte(pte))
		return false;
	entry = pte_to_swp_entry(pte);
	return is_writable_migration_entry(entry) ||
	       is_writable_device_private_entry(entry) ||
	       is_writable_device_exclusive_entry(entry);
}

/*
 * Test only: report the marks of [@addr, @end), within one VMA.  Returns
 * where it stopped: @end, or the first page that did not fit.
 */
static unsigned long sweep_test_range(struct touched_sweep *s,
				      struct touched_vma *tv, unsigned long addr,
				      unsigned long end, bool report)
{
	unsigned long idx, last = tv_index(tv, end);
	unsigned long stop = end;

	spin_lock(&s->tm->lock);
	for (idx = tb_next(tv, tv_index(tv, addr)); idx < last;
	     idx = tb_next(tv, idx + 1)) {
		unsigned long page = tv->vma->vm_start + idx * PAGE_SIZE;

		if (!report)
			continue;
		if (!sweep_fits(s, page, TOUCHED_RANGE_TOUCHED)) {
			stop = page;
			break;
		}
		sweep_emit(s, page, page + PAGE_SIZE, TOUCHED_RANGE_TOUCHED);
	}
	spin_unlock(&s->tm->lock);
	return stop;
}

/*
 * Test and clear the marks of [@addr, @end), which lie in one page table of
 * one VMA.  Under the page table lock, each marked page is write-protected
 * and its mark cleared, so a concurrent write either happened before (and is
 * reported now) or faults afterwards (and marks the page again).
 *
 * TLB flushes are gathered in @s->tlb and issued once per VMA, as mprotect()
 * does, rather than once per page table: a write through a stale writable
 * TLB entry in between lands before the sweep returns, so before the caller
 * copies the page it is told about, and mm_tlb_flush_pending() tells other
 * paths that such entries may exist.  Returns where it stopped: @end, or
 * the first page that did not fit; *@next is the index of the first marked
 * page at or after @end, looked up while the tracking lock is held anyway.
 */
static unsigned long sweep_clear_table(struct touched_sweep *s,
				       struct touched_vma *tv,
				       unsigned long addr, unsigned long end,
				       bool report, unsigned long *next)
{
	struct vm_area_struct *vma = tv->vma;
	DECLARE_BITMAP(marked, PTRS_PER_PTE);
	DECLARE_BITMAP(cleared, PTRS_PER_PTE);
	struct mmu_notifier_range range;
	unsigned long first = tv_index(tv, addr), nr = (end - addr) >> PAGE_SHIFT;
	unsigned long stop = end, i;
	pte_t *start_pte, *ptep = NULL, old = __pte(0);
	spinlock_t *ptl;		/* of the page table of [addr, end) */

	bitmap_zero(marked, PTRS_PER_PTE);
	bitmap_zero(cleared, PTRS_PER_PTE);

	mmu_notifier_range_init(&range, MMU_NOTIFY_PROTECTION_VMA, 0, s->mm,
				addr, end);
	mmu_notifier_invalidate_range_start(&range);

	/* Marks may outlive page tables (zaps, mremap): allocate them then. */
	start_pte = get_locked_pte(s->mm, addr, &ptl);

	/*
	 * Marks change only under the page table lock of their entries, so
	 * the table's lock is enough to read them; without a table, take the
	 * tracking lock.
	 */
	if (!start_pte)
		spin_lock(&s->tm->lock);
	for (i = find_next_bit(tv->marks, first + nr, first); i < first + nr;
	     i = find_next_bit(tv->marks, first + nr, i + 1))
		__set_bit(i - first, marked);
	if (!start_pte)
		spin_unlock(&s->tm->lock);

	for_each_set_bit(i, marked, nr) {
		unsigned long page = addr + i * PAGE_SIZE;
		u64 flags = TOUCHED_RANGE_TOUCHED;
		bool keep;

		if (start_pte) {
			ptep = start_pte + i;
			old = ptep_get(ptep);
			keep = sweep_must_keep(vma, page, old);
		} else {
			/* No page table and no memory for one. */
			keep = true;
		}
		if (keep)
			flags |= TOUCHED_RANGE_OVERREPORTED;
		if (report && !sweep_fits(s, page, flags)) {
			stop = page;
			break;
		}
		if (!keep && pte_present(old)) {
			old = ptep_modify_prot_start(vma, page, ptep);
			/* A pin taken before the entry was cleared shows now. */
			if (sweep_must_keep(vma, page, old)) {
				ptep_modify_prot_commit(vma, page, ptep, old, old);
				keep = true;
			} else {
				if (pte_write(old))
					tlb_flush_pte_range(&s->tlb, page,
							    PAGE_SIZE);
				ptep_modify_prot_commit(vma, page, ptep, old,
							pte_wrprotect(old));
			}
		}
		if (report)
			sweep_emit(s, page, page + PAGE_SIZE, flags);
		if (!keep)
			__set_bit(i, cleared);
	}

	spin_lock(&s->tm->lock);
	for_each_set_bit(i, cleared, nr)
		tb_clear(tv, first + i);
	tb_summarize(tv, first, first + nr - 1);
	if (tb_empty(tv))
		touched_untag(s->tm, tv);
	*next = tb_next(tv, first + nr);
	spin_unlock(&s->tm->lock);

	if (start_pte)
		pte_unmap_unlock(start_pte, ptl);
	mmu_notifier_invalidate_range_end(&range);
	return stop;
}

/*
 * Sweep the marked pages of one tracked VMA within [@addr, @end), one page
 * table at a time, visiting only marked pages.
 */
static unsigned long sweep_vma(struct touched_sweep *s, struct touched_vma *tv,
			       unsigned long addr, unsigned long end,
			       bool report)
{
	unsigned long idx, page, table_end, stop = end;

	if (s->clear)
		tlb_start_vma(&s->tlb, tv->vma);
	spin_lock(&s->tm->lock);
	idx = tb_next(tv, tv_index(tv, addr));
	spin_unlock(&s->tm->lock);
	while (idx < tv->nr_pages) {
		page = tv->vma->vm_start + idx * PAGE_SIZE;
		if (page >= end)
			break;
		table_end = pmd_addr_end(page, end);
		if (s->clear) {
			stop = sweep_clear_table(s, tv, page, table_end, report,
						 &idx);
		} else {
			stop = sweep_test_range(s, tv, page, table_end, report);
			spin_lock(&s->tm->lock);
			idx = tb_next(tv, tv_index(tv, table_end));
			spin_unlock(&s->tm->lock);
		}
		if (stop < table_end)
			break;
		stop = end;
		cond_resched();
	}
	if (s->clear)
		tlb_end_vma(&s->tlb, tv->vma);
	return stop;
}

/*
 * Sweep the touched pages of [@addr, @end) in every tagged VMA.  With
 * @report false the marks are only cleared: the range is being reported as
 * gone, which says more.  Returns where it stopped.
 */
static unsigned long sweep_touched(struct touched_sweep *s, unsigned long addr,
				   unsigned long end, bool report)
{
	struct touched_vma *tv;
	unsigned long lo, hi, stop;

	while (addr < end) {
		spin_lock(&s->tm->lock);
		tv = touched_first_tagged(s->tm, addr);
		spin_unlock(&s->tm->lock);
		if (!tv || tv->vma->vm_start >= end)
			break;
		lo = max(addr, tv->vma->vm_start);
		hi = min(end, tv->vma->vm_end);
		stop = sweep_vma(s, tv, lo, hi, report);
		if (stop < hi)
			return stop;
		addr = hi;
	}
	return end;
}

/* The first gone range that ends above @addr, clipped to the window. */
static bool sweep_next_gone(struct touched_sweep *s, unsigned long addr,
			    unsigned long *start, unsigned long *end)
{
	MA_STATE(mas, &s->tm->gone, addr, addr);
	void *entry;

	if (READ_ONCE(s->tm->gone_lost)) {
		*start = addr;
		*end = s->end;
		return true;
	}
	mtree_lock(&s->tm->gone);
	entry = mas_find(&mas, s->end - 1);
	mtree_unlock(&s->tm->gone);
	if (!entry)
		return false;
	*start = max_t(unsigned long, addr, mas.index);
	*end = min_t(unsigned long, s->end, mas.last + 1);
	return true;
}

/*
 * One round under mmap_lock: sweep from @s->addr until the window is done or
 * @s->buf is full.  Gone ranges win over touched ones: the dumper has to
 * drop its image of them anyway.
 */
static void sweep_round(struct touched_sweep *s)
{
	unsigned long gone_start, gone_end, stop;

	while (s->addr < s->end) {
		bool gone = sweep_next_gone(s, s->addr, &gone_start, &gone_end);
		unsigned long touched_end = gone ? gone_start : s->end;

		stop = sweep_touched(s, s->addr, touched_end, true);
		s->addr = stop;
		if (stop < touched_end || !gone)
			return;

		if (!sweep_fits(s, gone_start, TOUCHED_RANGE_GONE))
			return;
		sweep_emit(s, gone_start, gone_end, TOUCHED_RANGE_GONE);
		if (s->clear) {
			sweep_touched(s, gone_start, gone_end, false);
			if (READ_ONCE(s->tm->gone_lost)) {
				if (!gone_start && gone_end == TASK_SIZE_MAX)
					WRITE_ONCE(s->tm->gone_lost, false);
			} else if (!touched_should_fail(gone_end - gone_start)) {
				/* On failure the record stays: reported again. */
				mtree_store_range(&s->tm->gone, gone_start,
						  gone_end - 1, NULL, GFP_KERNEL);
			}
		}
		s->addr = gone_end;
	}
}

/*
 * Sweep [@args->start, @args->end).  Rounds alternate between collecting
 * entries into a kernel buffer under mmap_lock and copying them out without
 * it; the last entry of a round is held back so that the next round can
 * extend it.
 */
static long touched_sweep_ranges(struct mm_struct *mm,
				 struct touched_sweep_args *args,
				 struct touched_sweep_args __user *uargs)
{
	struct touched_range __user *vec = u64_to_user_ptr(args->vec);
	struct touched_sweep s = {
		.mm = mm,
		.clear = args->flags & TOUCHED_SWEEP_CLEAR,
		.addr = args->start,
		.end = args->end,
	};
	unsigned long copied = 0, batch;
	long ret = 0;

	batch = clamp_t(unsigned long, args->vec_len, 1, TOUCHED_SWEEP_BATCH);
	if (touched_should_fail(batch * sizeof(*s.buf)))
		return -ENOMEM;
	s.buf = kmalloc_array(batch, sizeof(*s.buf), GFP_KERNEL);
	if (!s.buf)
		return -ENOMEM;

	while (s.addr < s.end) {
		unsigned long room = args->vec_len - copied;

		s.cap = min(batch, room);
		if (mmap_read_lock_killable(mm)) {
			ret = -EINTR;
			break;
		}
		s.tm = READ_ONCE(mm->touched);
		if (s.tm) {
			if (s.clear)
				tlb_gather_mmu(&s.tlb, mm);
			sweep_round(&s);
			if (s.clear)
				tlb_finish_mmu(&s.tlb);
		} else {
			s.addr = s.end;
		}
		mmap_read_unlock(mm);

		/* The round stopped on a full buffer: is it the caller's? */
		if (s.addr < s.end && s.cap == room)
			break;
		/* Copy out all but the last entry, which may still grow. */
		if (s.count > 1) {
			if (copy_to_user(vec + copied, s.buf,
					 (s.count - 1) * sizeof(*s.buf))) {
				ret = -EFAULT;
				break;
			}
			copied += s.count - 1;
			s.buf[0] = s.buf[s.count - 1];
			s.count = 1;
		}
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
	}

	if (!ret && s.count) {
		if (copy_to_user(vec + copied, s.buf, s.count * sizeof(*s.buf)))
			ret = -EFAULT;
		else
			copied += s.count;
	}
	kfree(s.buf);
	if (ret)
		return ret;
	if (put_user(s.addr, &uargs->walk_end))
		return -EFAULT;
	return copied;
}

/*
 * VMAs that cannot be tracked: their entries are installed by paths that
 * do not mark (PFN maps, hugetlb, DAX), their pages are written without a
 * write fault (shadow stacks) or dropped without a zap (droppable), they
 * grow at the bottom (stacks), or their page protection was changed by a
 * driver in a way that write-notify cannot override.
 */
static int touched_vma_eligible(struct vm_area_struct *vma)
{
	pgprot_t prot;

	if (vma->vm_flags & (VM_SPECIAL | VM_HUGETLB | VM_GROWSDOWN |
			     VM_GROWSUP | VM_SHADOW_STACK | VM_DROPPABLE))
		return -EINVAL;
	if (vma_is_dax(vma))
		return -EINVAL;
	if (!can_modify_vma(vma))
		return -EPERM;
	if (vma->vm_flags & VM_SHARED) {
		prot = vm_pgprot_modify(vma->vm_page_prot, vma->vm_flags);
		if (pgprot_val(prot) !=
		    pgprot_val(vm_pgprot_modify(prot, vma->vm_flags)))
			return -EINVAL;
	}
	return 0;
}

static int touched_split_pmd(pmd_t *pmd, unsigned long addr,
			     unsigned long next, struct mm_walk *walk)
{
	split_huge_pmd(walk->vma, pmd, addr);
	walk->action = ACTION_CONTINUE;
	return 0;
}

static const struct mm_walk_ops touched_split_ops = {
	.pmd_entry	= touched_split_pmd,
	.walk_lock	= PGWALK_WRLOCK,
};

/*
 * Start tracking [@start, @end) of @vma, which the caller split to exactly
 * that range: no huge PMDs, read-only page protection, every present entry
 * write-protected, and no page marked.
 */
static int touched_vma_start(struct touched_mm *tm, struct vm_area_struct *vma)
{
	struct touched_vma *tv;
	struct mmu_gather tlb;

	tv = touched_vma_alloc(vma_pages(vma));
	if (!tv)
		return -ENOMEM;
	tv->vma = vma;

	walk_page_range(vma->vm_mm, vma->vm_start, vma->vm_end,
			&touched_split_ops, NULL);

	vm_flags_set(vma, VM_TRACK_TOUCHED);
	spin_lock(&tm->lock);
	vma->touched = tv;
	touched_tree_insert(tm, tv);
	spin_unlock(&tm->lock);
	vma_set_page_prot(vma);

	tlb_gather_mmu(&tlb, vma->vm_mm);
	change_protection(&tlb, vma, vma->vm_start, vma->vm_end, 0);
	tlb_finish_mmu(&tlb);
	return 0;
}

/* Stop tracking @vma and drop its marks. */
static void touched_vma_stop(struct touched_mm *tm, struct vm_area_struct *vma)
{
	struct touched_vma *tv;

	vm_flags_clear(vma, VM_TRACK_TOUCHED);
	spin_lock(&tm->lock);
	tv = vma->touched;
	vma->touched = NULL;
	if (tv)
		touched_tree_erase(tm, tv);
	spin_unlock(&tm->lock);
	touched_vma_destroy(tv);
	vma_set_page_prot(vma);
}

/*
 * Untracking changes the flags of the tracked VMAs in [start, end) and may
 * split them: refuse it, before changing anything, if one is sealed.
 */
static int touched_check_untrack(struct mm_struct *mm, unsigned long start,
				 unsigned long end)
{
	struct vm_area_struct *vma;

	VMA_ITERATOR(vmi, mm, start);
	for_each_vma_range(vmi, vma, end)
		if (vma_touch_tracked(vma) && !can_modify_vma(vma))
			return -EPERM;
	return 0;
}

/* Is [start, end) mapped without holes, and may all of it be tracked? */
static int touched_check_range(struct mm_struct *mm, unsigned long start,
			       unsigned long end)
{
	struct vm_area_struct *vma;
	unsigned long covered = start;
	int ret;

	VMA_ITERATOR(vmi, mm, start);
	for_each_vma_range(vmi, vma, end) {
		if (vma->vm_start > covered)
			return -ENOMEM;
		if (!vma_touch_tracked(vma)) {
			ret = touched_vma_eligible(vma);
			if (ret)
				return ret;
		}
		covered = vma->vm_end;
	}
	return covered < end ? -ENOMEM : 0;
}

/*
 * Turn tracking on or off over [@start, @end), splitting VMAs at the edges
 * as mseal() does.  VMAs already in the wanted state are left alone.
 */
static int touched_apply(struct mm_struct *mm, unsigned long start,
			 unsigned long end, bool track)
{
	struct vm_area_struct *vma, *prev;
	struct touched_mm *tm = mm->touched;
	unsigned long nstart = start;
	int ret = 0;

	VMA_ITERATOR(vmi, mm, start);
	vma = vma_find(&vmi, end);
	if (!vma)
		return 0;
	prev = vma_prev(&vmi);
	vma_iter_set(&vmi, vma->vm_start);
	if (start > vma->vm_start)
		prev = vma;

	for_each_vma_range(vmi, vma, end) {
		unsigned long vstart = max(nstart, vma->vm_start);
		unsigned long vend = min(end, vma->vm_end);
		vm_flags_t flags = vma->vm_flags;

		if (vma_touch_tracked(vma) != track) {
			if (track)
				flags |= VM_TRACK_TOUCHED;
			else
				flags &= ~VM_TRACK_TOUCHED;
			vma = vma_modify_flags(&vmi, prev, vma, vstart, vend,
					       flags);
			if (IS_ERR(vma))
				return PTR_ERR(vma);
			if (track)
				ret = touched_vma_start(tm, vma);
			else
				touched_vma_stop(tm, vma);
			if (ret)
				return ret;
		}
		prev = vma;
		nstart = vma_iter_end(&vmi);
	}
	return 0;
}

static int touched_track(struct mm_struct *mm, unsigned long start,
			 unsigned long end, bool track)
{
	int ret;

	if (start == end)
		return 0;
	if (mmap_write_lock_killable(mm))
		return -EINTR;
	ret = 0;
	if (track) {
		ret = touched_check_range(mm, start, end);
		if (!ret && !touched_mm_get(mm))
			ret = -ENOMEM;
	} else {
		ret = touched_check_untrack(mm, start, end);
	}
	/* Nothing was ever tracked: nothing to untrack. */
	if (!ret && mm->touched)
		ret = touched_apply(mm, start, end, track);
	mmap_write_unlock(mm);
	return ret;
}

/**
 * sys_touched_sweep - track, untrack or sweep touched pages of a process
 * @pidfd: pidfd of the target process
 * @uargs: operation and its arguments, see struct touched_sweep_args
 *
 * Arguments are checked in this order, and the first failing check decides
 * the error:
 *
 *  1. @uargs unreadable: -EFAULT.
 *  2. @uargs->size below TOUCHED_SWEEP_ARGS_SIZE_VER0: -EINVAL; above
 *     PAGE_SIZE, or with non-zero bytes past the structure this kernel
 *     knows: -E2BIG.
 *  3. Unknown op, unknown flag, or a flag, @vec or @vec_len given to an
 *     operation that takes none: -EINVAL.
 *  4. @start or @end not page aligned, @end below @start, or @end above the
 *     largest user address: -EINVAL.
 *  5. For a sweep, @vec and @vec_len not describing user memory: -EFAULT.
 *  6. @pidfd not a pidfd: -EBADF.
 *  7. The target has exited: -ESRCH.
 *  8. The caller may not ptrace-attach to the target: -EPERM.
 *
 * Then, for TOUCHED_SWEEP_OP_TRACK: a hole in the range: -ENOMEM; a VMA
 * that cannot be tracked: -EINVAL (-EPERM if sealed); nothing is changed in
 * either case.  Running out of memory while splitting or allocating marks
 * gives -ENOMEM with a prefix of the range tracked.  For
 * TOUCHED_SWEEP_OP_UNTRACK: a tracked VMA in the range is sealed: -EPERM,
 * and nothing is changed.
 *
 * Locking: takes the target's mmap_lock, for writing to track or untrack
 * and for reading to sweep, and never copies to or from user memory while
 * holding it.  Marks are set and cleared under the page table locks and the
 * target's tracking lock.
 *
 * Return: for a sweep, the number of ranges stored in @vec; 0 for the other
 * operations; a negative errno on failure.
 */
SYSCALL_DEFINE2(touched_sweep, int, pidfd,
		struct touched_sweep_args __user *, uargs)
{
	struct touched_sweep_args args;
	struct mm_struct *mm;
	long ret;

	ret = touched_sweep_copy_args(&args, uargs);
	if (ret)
		return ret;
	ret = touched_sweep_check_args(&args);
	if (ret)
		return ret;

	mm = touched_sweep_get_mm(pidfd);
	if (IS_ERR(mm))
		return PTR_ERR(mm);

	switch (args.op) {
	case TOUCHED_SWEEP_OP_TRACK:
		ret = touched_track(mm, args.start, args.end, true);
		break;
	case TOUCHED_SWEEP_OP_UNTRACK:
		ret = touched_track(mm, args.start, args.end, false);
		break;
	default:
		ret = touched_sweep_ranges(mm, &args, uargs);
		break;
	}

	mmput(mm);
	return ret;
}
