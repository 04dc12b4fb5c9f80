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
#include <linux/pagemap.h>
#include <linux/pagewalk.h>
#include <linux/pid.h>
#include <linux/ptrace.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/swap.h>
#include <linux/swapops.h>
#include <linux/syscalls.h>
#include <linux/touched_check.h>
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

/*
 * The first round's buffer comes from a kmalloc cache: a round trip to the
 * page allocator costs a sparse sweep more than the bigger buffer saves.
 * A round that fills it gets the full one.
 */
#define TOUCHED_SWEEP_FIRST_BATCH \
	(KMALLOC_MAX_CACHE_SIZE / sizeof(struct touched_range))

/*
 * Page tables (or larger unpopulated spans) one round visits at most before
 * it drops mmap_lock, so that a sweep of a huge marked range lets writers
 * of the address space in, and notices fatal signals, now and then.
 */
#define TOUCHED_SWEEP_ROUND_SPANS	512

/*
 * Page-table spans a round visits between two cond_resched() calls.  A
 * sparse sweep visits about one per written page, and a call after each
 * was 3 to 5 % of such a sweep.  A span larger than a page table (a
 * stretch no page table maps, whose marks may run to 512 GiB) is followed
 * by one, and so is each round.
 */
#define TOUCHED_SWEEP_RESCHED_SPANS	16

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
 * @spans: page tables or spans this round may still visit
 * @lost_start: where this call began reporting the whole window gone
 *	because a gone record was lost, or ULONG_MAX
 * @tlb: TLB flushes owed by a clearing sweep; issued when the round ends,
 *	or at the end of each VMA where the architecture does not merge VMAs
 *	in an mmu_gather
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
	unsigned long spans;
	unsigned long lost_start;
	struct mmu_gather tlb;
};

/* Can a page at @addr with @flags be reported? */
static __always_inline bool sweep_fits(struct touched_sweep *s,
				       unsigned long addr, u64 flags)
{
	struct touched_range *last = s->count ? &s->buf[s->count - 1] : NULL;

	if (last && last->end == addr && last->flags == flags)
		return true;
	return s->count < s->cap;
}

/* Report [start, end) with @flags; sweep_fits() said yes. */
static __always_inline void sweep_emit(struct touched_sweep *s,
				       unsigned long start, unsigned long end,
				       u64 flags)
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
 * The next folio of the page cache walk @xas that is pinned, with a
 * reference, or NULL past @last.  Folios are looked at with a reference,
 * as filemap_get_folios() does: without one, a folio may be freed and
 * reused meanwhile.  The caller holds rcu_read_lock().
 */
static struct folio *touched_next_pinned(struct xa_state *xas, pgoff_t last)
{
	struct folio *folio;

	for (folio = xas_find(xas, last); folio; folio = xas_next_entry(xas, last)) {
		if (xas_retry(xas, folio) || xa_is_value(folio))
			continue;
		if (!folio_try_get(folio))
			goto reset;
		if (unlikely(folio != xas_reload(xas))) {
			folio_put(folio);
			goto reset;
		}
		if (folio_maybe_dma_pinned(folio))
			return folio;
		folio_put(folio);
		continue;
reset:
		xas_reset(xas);
	}
	return NULL;
}

/*
 * A page of a shared file mapping stays in the page cache when this
 * mapping's entry for it goes (MADV_DONTNEED, reclaim, khugepaged), and a
 * pin taken through the entry keeps writing it there: the mapping shows
 * those writes again on its next fault.  Is a page of file offsets
 * [@first, @last] pinned?
 */
static bool sweep_file_pinned(struct vm_area_struct *vma, pgoff_t first,
			      pgoff_t last)
{
	XA_STATE(xas, &vma->vm_file->f_mapping->i_pages, first);
	struct folio *folio;

	rcu_read_lock();
	folio = touched_next_pinned(&xas, last);
	rcu_read_unlock();
	if (!folio)
		return false;
	folio_put(folio);
	return true;
}

static __always_inline bool vma_shared_file(struct vm_area_struct *vma)
{
	return vma->vm_file && (vma->vm_flags & VM_SHARED);
}

/*
 * Would clearing this entry lose a write?  Pinned pages may be written
 * through the pin at any time, a lazily freed page may be dropped by
 * reclaim without a fault, and writable migration or device entries become
 * writable PTEs without one; a migration entry of a pinned page becomes
 * its PTE again when the migration fails on the pin, and a pinned page of
 * a shared file mapping is mapped again by the next fault after its entry
 * went.  Such pages keep their marks.
 *
 * MADV_FREE leaves a clean entry and a clean folio, but the folio loses
 * PG_swapbacked only when a per-CPU LRU batch drains, which may be after
 * this sweep: test what MADV_FREE leaves behind instead.  Every write
 * fault dirties the entry, so this holds until the page is written again,
 * and reclaim never drops a folio mapped by a dirty entry.
 *
 * Only pins taken through this mm's page tables count, as only writes
 * through them are tracked: @pinned_mm says whether it ever took one
 * (MMF_HAS_PINNED, read after the entry was cleared).  A dirty entry of
 * an mm that never pinned needs no look at its folio.
 */
static bool __sweep_must_keep(struct vm_area_struct *vma, unsigned long addr,
			      pte_t pte, bool pinned_mm)
{
	struct folio *folio;
	swp_entry_t entry;

	if (pte_present(pte)) {
		folio = vm_normal_folio(vma, addr, pte);
		if (!folio)
			return false;
		return (pinned_mm && folio_maybe_dma_pinned(folio)) ||
		       (!pte_dirty(pte) && folio_test_anon(folio) &&
			!folio_test_dirty(folio) &&
			!folio_test_swapcache(folio));
	}
	if (pte_none(pte))
		return pinned_mm && vma_shared_file(vma) &&
		       sweep_file_pinned(vma, linear_page_index(vma, addr),
					 linear_page_index(vma, addr));
	if (!is_swap_pte(pte))
		return false;
	entry = pte_to_swp_entry(pte);
	if (is_writable_migration_entry(entry) ||
	    is_writable_device_private_entry(entry) ||
	    is_writable_device_exclusive_entry(entry))
		return true;
	return pinned_mm && is_migration_entry(entry) &&
	       folio_maybe_dma_pinned(pfn_swap_entry_folio(entry));
}

/* Inline for the common case: a written page of an mm that never pinned. */
static __always_inline bool sweep_must_keep(struct vm_area_struct *vma,
					    unsigned long addr, pte_t pte,
					    bool pinned_mm)
{
	if (pte_present(pte) && pte_dirty(pte) && !pinned_mm)
		return false;
	return __sweep_must_keep(vma, addr, pte, pinned_mm);
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
 * Lock the page table that maps @addr without allocating one, and return
 * it mapped.  If there is none, return NULL with *@ptl holding the lock
 * that populating the missing level takes (the PMD lock for a missing page
 * table, mm->page_table_lock above that) and *@end clipped to what the
 * missing entry covers: no entry maps those pages, and none can appear
 * while the lock is held.  If the PMD maps a huge page or holds a
 * migration entry, return NULL with no lock held and *@huge set.
 */
static pte_t *sweep_lock_table(struct mm_struct *mm, unsigned long addr,
			       unsigned long *end, spinlock_t **ptl, bool *huge)
{
	unsigned long limit = *end;
	pgd_t *pgd;
	p4d_t *p4d;
	pud_t *pud;
	pmd_t *pmd;
	pte_t *pte;
	bool locked = false;

	*huge = false;
again:
	pgd = pgd_offset(mm, addr);
	if (pgd_none(READ_ONCE(*pgd))) {
		*end = pgd_addr_end(addr, limit);
		goto upper;
	}
	p4d = p4d_offset(pgd, addr);
	if (p4d_none(READ_ONCE(*p4d))) {
		*end = p4d_addr_end(addr, limit);
		goto upper;
	}
	pud = pud_offset(p4d, addr);
	if (pud_none(READ_ONCE(*pud))) {
		*end = pud_addr_end(addr, limit);
		goto upper;
	}
	if (locked) {
		/* A level appeared while we took the lock. */
		spin_unlock(*ptl);
		locked = false;
	}
	*end = pmd_addr_end(addr, limit);
	if (pud_leaf(READ_ONCE(*pud))) {
		*huge = true;
		return NULL;
	}
	pmd = pmd_offset(pud, addr);
	pte = pte_offset_map_lock(mm, pmd, addr, ptl);
	if (pte)
		return pte;
	*ptl = pmd_lock(mm, pmd);
	if (pmd_none(pmdp_get(pmd)))
		return NULL;
	spin_unlock(*ptl);
	if (!pmd_present(pmdp_get(pmd)) || pmd_leaf(pmdp_get(pmd))) {
		*huge = true;
		return NULL;
	}
	/* A page table appeared meanwhile. */
	goto again;

upper:
	if (locked)
		return NULL;
	*ptl = &mm->page_table_lock;
	spin_lock(*ptl);
	locked = true;
	goto again;
}

/*
 * Report the marks of [@addr, @end), in one VMA, where no page table entry
 * maps a page: as they are and cleared, or, with @keep, as OVERREPORTED
 * and kept.  The caller holds the lock that populating the span would
 * take, or, with @keep, nothing, and brings summary and tag up to date
 * afterwards.  Returns where it stopped.
 */
static unsigned long sweep_clear_unmapped(struct touched_sweep *s,
					  struct touched_vma *tv,
					  unsigned long addr, unsigned long end,
					  bool report, bool keep)
{
	unsigned long first = tv_index(tv, addr), last = tv_index(tv, end);
	unsigned long idx, run, stop = end;
	u64 flags = TOUCHED_RANGE_TOUCHED;

	/* Coarse, but rare: a pinned page anywhere keeps the whole span. */
	if (!keep && vma_shared_file(tv->vma))
		keep = sweep_file_pinned(tv->vma, linear_page_index(tv->vma, addr),
					 linear_page_index(tv->vma, end - 1));
	if (keep)
		flags |= TOUCHED_RANGE_OVERREPORTED;
	spin_lock(&s->tm->lock);
	for (idx = tb_next(tv, first); idx < last; idx = tb_next(tv, run)) {
		unsigned long page = tv->vma->vm_start + idx * PAGE_SIZE;

		run = find_next_zero_bit(tv->marks, last, idx);
		if (report) {
			if (!sweep_fits(s, page, flags)) {
				stop = page;
				break;
			}
			sweep_emit(s, page, tv->vma->vm_start + run * PAGE_SIZE,
				   flags);
		}
		if (!keep) {
			tb_andnot_bits(tv->marks, idx, run - idx);
			touched_check_forget(tv, idx, run);
		}
	}
	spin_unlock(&s->tm->lock);
	return stop;
}

/*
 * The next set bit of the @nr-bit @map, walking a word at a time with
 * *@wi the word and *@word its bits not returned yet; @nr when none is
 * left.  Bits of @map from @nr on must be clear.
 */
static __always_inline unsigned long
sweep_next_marked(const unsigned long *map, unsigned long nr,
		  unsigned long *wi, unsigned long *word)
{
	unsigned long bit;

	while (!*word) {
		if (++*wi >= BITS_TO_LONGS(nr))
			return nr;
		*word = map[*wi];
	}
	bit = *wi * BITS_PER_LONG + __ffs(*word);
	*word &= *word - 1;
	return bit;
}

/* Entries cleared before one barrier; their old values live on the stack. */
#define SWEEP_PTE_BATCH	32

/*
 * Test and clear the marks of [@addr, @end), which lie in one page table of
 * one VMA.  Under the page table lock, each marked page is write-protected
 * and its mark cleared, so a concurrent write either happened before (and is
 * reported now) or faults afterwards (and marks the page again).
 *
 * The entries of up to SWEEP_PTE_BATCH marked pages are taken out of the
 * page table at a time, then one barrier makes the pins taken before
 * visible (GUP-fast either sees a cleared entry or its pin, and the mm's
 * MMF_HAS_PINNED, show here), then each entry is put back write-protected,
 * or as it was if its page must keep its mark.
 *
 * TLB flushes are gathered in @s->tlb, as mprotect() does, rather than
 * issued per page table: a write through a stale writable TLB entry in
 * between lands before the sweep returns, so before the caller copies the
 * page it is told about, and mm_tlb_flush_pending() tells other paths that
 * such entries may exist.  The caller brings summary and tag up to date
 * afterwards.  Returns where it stopped: @end, or the first page that did
 * not fit.
 */
static unsigned long sweep_clear_ptes(struct touched_sweep *s,
				      struct touched_vma *tv, pte_t *start_pte,
				      unsigned long addr, unsigned long end,
				      bool report)
{
	struct vm_area_struct *vma = tv->vma;
	/*
	 * Written before they are read.  Left out of stack auto-init: zeroing
	 * 384 bytes per page table is a tenth of a sparse sweep.  @marks holds
	 * the marks found, then those cleared.
	 */
	DECLARE_BITMAP(marks, PTRS_PER_PTE) __uninitialized;
	unsigned short idx[SWEEP_PTE_BATCH] __uninitialized;
	pte_t old[SWEEP_PTE_BATCH] __uninitialized;
	unsigned long first = tv_index(tv, addr), nr = (end - addr) >> PAGE_SHIFT;
	unsigned long stop = end, i, j, n, wi = 0, word;

	/*
	 * Entries whose TLB flush reclaim batched may still be writable in
	 * some TLB: flush them before their marks are cleared.
	 */
	flush_tlb_batched_pending(s->mm);

	/* Marks of mapped pages are set only under this page table's lock. */
	tb_get_marks(tv, first, nr, marks);

	arch_enter_lazy_mmu_mode();
	word = marks[0];
	i = sweep_next_marked(marks, nr, &wi, &word);
	while (i < nr && stop == end) {
		bool pinned_mm;

		for (n = 0; i < nr && n < SWEEP_PTE_BATCH;
		     i = sweep_next_marked(marks, nr, &wi, &word), n++) {
			pte_t *ptep = start_pte + i;

			idx[n] = i;
			old[n] = ptep_get(ptep);
			if (pte_present(old[n]))
				old[n] = ptep_modify_prot_start(vma, addr + i * PAGE_SIZE, ptep);
		}
		if (IS_ENABLED(CONFIG_HAVE_GUP_FAST))
			/* Pairs with try_grab_folio_fast()'s barrier. */
			smp_mb();
		pinned_mm = test_bit(MMF_HAS_PINNED, &s->mm->flags);

		for (j = 0; j < n; j++) {
			unsigned long page = addr + idx[j] * PAGE_SIZE;
			u64 flags = TOUCHED_RANGE_TOUCHED;
			pte_t *ptep = start_pte + idx[j];
			bool present = pte_present(old[j]);
			bool keep;

			keep = sweep_must_keep(vma, page, old[j], pinned_mm);
			if (keep)
				flags |= TOUCHED_RANGE_OVERREPORTED;
			if (stop == end && report && !sweep_fits(s, page, flags))
				stop = page;
			/* Kept, or not reported: back as it was, marked. */
			if (present && (keep || stop < end)) {
				ptep_modify_prot_commit(vma, page, ptep, old[j],
							old[j]);
			} else if (present) {
				if (pte_write(old[j]))
					tlb_flush_pte_range(&s->tlb, page,
							    PAGE_SIZE);
				ptep_modify_prot_commit(vma, page, ptep, old[j],
							pte_wrprotect(old[j]));
			}
			if (stop < end || keep) {
				__clear_bit(idx[j], marks);
				if (stop < end)
					continue;
			}
			if (report)
				sweep_emit(s, page, page + PAGE_SIZE, flags);
			if (!keep)
				touched_check_cleared(tv, first + idx[j], present);
		}
	}
	arch_leave_lazy_mmu_mode();

	/* Not reached: left marked too. */
	if (i < nr)
		bitmap_clear(marks, i, nr - i);
	tb_clear_marks(tv, first, marks, nr);
	return stop;
}

/*
 * Test and clear the marks from @addr, in one VMA, below *@end: of one page
 * table, or of a larger span that no page table maps.  Sets *@end to the
 * end of what it covered, and returns where it stopped: *@end, or the first
 * page that did not fit.
 */
static unsigned long sweep_clear_span(struct touched_sweep *s,
				      struct touched_vma *tv,
				      unsigned long addr, unsigned long *end,
				      bool report)
{
	struct mmu_notifier_range range;
	unsigned long stop;
	pte_t *start_pte;
	spinlock_t *ptl;	/* of the page table, or of the missing level */
	bool huge;

	/* The page cache walk of sweep_file_pinned() is done under the lock. */
	if (vma_shared_file(tv->vma))
		*end = pmd_addr_end(addr, *end);
	mmu_notifier_range_init(&range, MMU_NOTIFY_PROTECTION_VMA, 0, s->mm,
				addr, pmd_addr_end(addr, *end));
	mmu_notifier_invalidate_range_start(&range);
	start_pte = sweep_lock_table(s->mm, addr, end, &ptl, &huge);
	if (start_pte) {
		stop = sweep_clear_ptes(s, tv, start_pte, addr, *end, report);
		pte_unmap_unlock(start_pte, ptl);
	} else {
		/* A huge entry the VMA should not have: keep its marks. */
		stop = sweep_clear_unmapped(s, tv, addr, *end, report, huge);
		if (!huge)
			spin_unlock(ptl);
	}
	mmu_notifier_invalidate_range_end(&range);
	return stop;
}

/*
 * Sweep the marked pages of one tracked VMA within [@addr, @end), one page
 * table at a time, visiting only marked pages.  Returns where it stopped:
 * @end, the first page that did not fit, or where the round's budget of
 * page tables ran out.
 */
static unsigned long sweep_vma(struct touched_sweep *s, struct touched_vma *tv,
			       unsigned long addr, unsigned long end,
			       bool report)
{
	unsigned long idx, page, span_end, stop = end;

	if (s->clear)
		tlb_start_vma(&s->tlb, tv->vma);
	spin_lock(&s->tm->lock);
	idx = tb_next(tv, tv_index(tv, addr));
	if (s->clear && idx >= tv->nr_pages)
		touched_untag_if_empty(s->tm, tv);
	spin_unlock(&s->tm->lock);
	while (idx < tv->nr_pages) {
		page = tv->vma->vm_start + idx * PAGE_SIZE;
		if (page >= end)
			break;
		if (!s->spans) {
			stop = page;
			break;
		}
		s->spans--;
		if (s->clear) {
			span_end = end;
			stop = sweep_clear_span(s, tv, page, &span_end, report);
		} else {
			span_end = pmd_addr_end(page, end);
			stop = sweep_test_range(s, tv, page, span_end, report);
		}
		spin_lock(&s->tm->lock);
		/* The summary follows the marks the span cleared... */
		if (s->clear && stop > page)
			tb_summarize(tv, idx, tv_index(tv, stop) - 1);
		if (stop == span_end)
			idx = tb_next(tv, tv_index(tv, span_end));
		/* ...and the tag the last of them: all may be clear now. */
		if (s->clear && idx >= tv->nr_pages)
			touched_untag_if_empty(s->tm, tv);
		spin_unlock(&s->tm->lock);
		if (stop < span_end)
			break;
		stop = end;
		if (span_end - page > PMD_SIZE ||
		    !(s->spans % TOUCHED_SWEEP_RESCHED_SPANS))
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
 * One round under mmap_lock: sweep from @s->addr until the window is done,
 * @s->buf is full or the round's budget of page tables is spent.  Gone
 * ranges win over touched ones: the dumper has to drop its image of them
 * anyway.
 */
static void sweep_round(struct touched_sweep *s)
{
	unsigned long gone_start, gone_end, stop;

	while (s->addr < s->end) {
		bool gone = sweep_next_gone(s, s->addr, &gone_start, &gone_end);
		unsigned long touched_end = gone ? gone_start : s->end;
		bool lost = READ_ONCE(s->tm->gone_lost);

		stop = sweep_touched(s, s->addr, touched_end, true);
		s->addr = stop;
		if (stop < touched_end || !gone)
			return;

		if (!sweep_fits(s, gone_start, TOUCHED_RANGE_GONE))
			return;
		if (!s->clear) {
			sweep_emit(s, gone_start, gone_end, TOUCHED_RANGE_GONE);
			s->addr = gone_end;
			continue;
		}
		/* Report what was cleared: the rest is reported next round. */
		stop = sweep_touched(s, gone_start, gone_end, false);
		if (stop > gone_start)
			sweep_emit(s, gone_start, stop, TOUCHED_RANGE_GONE);
		if (lost) {
			if (s->lost_start == ULONG_MAX)
				s->lost_start = gone_start;
			if (!s->lost_start && stop == TASK_SIZE_MAX)
				WRITE_ONCE(s->tm->gone_lost, false);
		} else if (stop > gone_start &&
			   !touched_should_fail(stop - gone_start)) {
			/* On failure the record stays: reported again. */
			mtree_store_range(&s->tm->gone, gone_start, stop - 1,
					  NULL, GFP_KERNEL);
		}
		s->addr = stop;
		if (stop < gone_end)
			return;
	}
}

/*
 * Give back the marks of entries a clearing sweep cleared but could not
 * store: mark their pages again and record their gone ranges again, so
 * that a failed call loses nothing.
 */
static void sweep_unreport(struct touched_sweep *s,
			   const struct touched_range *r, unsigned long n)
{
	struct vm_area_struct *vma;
	unsigned long i, addr, end;

	if (!s->clear || !n)
		return;
	mmap_read_lock(s->mm);
	for (i = 0; i < n; i++) {
		if (r[i].flags & TOUCHED_RANGE_GONE) {
			touched_mm_gone(s->tm, r[i].start, r[i].end);
			continue;
		}
		for (addr = r[i].start; addr < r[i].end; addr = end) {
			vma = find_vma(s->mm, addr);
			if (!vma || vma->vm_start >= r[i].end)
				break;
			addr = max(addr, vma->vm_start);
			end = min_t(unsigned long, r[i].end, vma->vm_end);
			/* Unmapped since, or moved: reported gone instead. */
			if (vma_touch_tracked(vma))
				__touched_mark(vma, addr,
					       (end - addr) >> PAGE_SHIFT);
		}
	}
	mmap_read_unlock(s->mm);
}

/*
 * Sweep [@args->start, @args->end).  Rounds alternate between collecting
 * entries into a kernel buffer under mmap_lock and copying them out without
 * it; the last entry of a round is held back so that the next round can
 * extend it.
 *
 * A clearing sweep has cleared what it collected, so it must not fail
 * once it has collected something: if storing entries faults, their marks
 * and gone records are given back; if it is killed, it returns what it
 * stored.  walk_end is probed first so that storing it cannot fail late.
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
		.lost_start = ULONG_MAX,
	};
	unsigned long copied = 0, batch, size, n;
	struct touched_range *full;
	bool filled;
	long ret = 0;

	if (put_user(args->start, &uargs->walk_end))
		return -EFAULT;
	batch = clamp_t(unsigned long, args->vec_len, 1, TOUCHED_SWEEP_BATCH);
	size = min(batch, TOUCHED_SWEEP_FIRST_BATCH);
	if (touched_should_fail(size * sizeof(*s.buf)))
		return -ENOMEM;
	s.buf = kmalloc_array(size, sizeof(*s.buf), GFP_KERNEL);
	if (!s.buf)
		return -ENOMEM;

	while (s.addr < s.end) {
		unsigned long room = args->vec_len - copied;

		s.cap = min(size, room);
		s.spans = TOUCHED_SWEEP_ROUND_SPANS;
		if (mmap_read_lock_killable(mm))
			break;
		s.tm = READ_ONCE(mm->touched);
		if (s.tm) {
			if (s.clear && s.addr == args->start)
				touched_check_audit(mm);
			if (s.clear)
				tlb_gather_mmu(&s.tlb, mm);
			sweep_round(&s);
			if (s.clear) {
				tlb_finish_mmu(&s.tlb);
				touched_check_settle(mm);
			}
		} else {
			s.addr = s.end;
		}
		mmap_read_unlock(mm);

		/* The round stopped on a full buffer: is it the caller's? */
		filled = s.addr < s.end && s.count == s.cap;
		if (filled && s.cap == room)
			break;
		/* Copy out all but the last entry, which may still grow. */
		if (s.count > 1) {
			n = s.count - 1;
			if (copy_to_user(vec + copied, s.buf, n * sizeof(*s.buf))) {
				ret = -EFAULT;
				break;
			}
			copied += n;
			s.buf[0] = s.buf[n];
			s.count = 1;
		}
		if (fatal_signal_pending(current))
			break;
		/* A dense round may end before its first reschedule point. */
		cond_resched();
		/* A dense sweep: fewer rounds with the full buffer, if it comes. */
		if (filled && size < batch) {
			full = kmalloc_array(batch, sizeof(*s.buf),
					     GFP_KERNEL | __GFP_NOWARN);
			if (full) {
				memcpy(full, s.buf, s.count * sizeof(*s.buf));
				kfree(s.buf);
				s.buf = full;
				size = batch;
			}
		}
	}

	if (!ret && s.count) {
		if (copy_to_user(vec + copied, s.buf, s.count * sizeof(*s.buf)))
			ret = -EFAULT;
		else
			copied += s.count;
	}
	if (ret) {
		/* Nothing of @s.buf reached the caller: undo its clearing. */
		sweep_unreport(&s, s.buf, s.count);
		s.addr = s.count ? s.buf[0].start : s.addr;
		ret = copied ? 0 : ret;
	}
	kfree(s.buf);
	if (ret)
		return ret;
	/* Probed above; only a concurrent munmap() can make this fail. */
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
 * A page pinned before tracking started may be written through the pin at
 * any time: mark it, as a clearing sweep keeps the marks of pinned pages.
 * Migration entries count too, since a migration fails on a pin and puts
 * the page back.  (Pages lazily freed before tracking are not marked: a
 * clean anonymous page looks the same, and tracked pages start clean.)
 */
static int touched_mark_pinned(pte_t *pte, unsigned long addr,
			       unsigned long next, struct mm_walk *walk)
{
	pte_t ptent = ptep_get(pte);
	struct folio *folio = NULL;
	swp_entry_t entry;

	if (pte_present(ptent)) {
		folio = vm_normal_folio(walk->vma, addr, ptent);
	} else if (is_swap_pte(ptent)) {
		entry = pte_to_swp_entry(ptent);
		if (is_pfn_swap_entry(entry))
			folio = pfn_swap_entry_folio(entry);
	} else if (pte_none(ptent) && vma_shared_file(walk->vma)) {
		if (sweep_file_pinned(walk->vma, linear_page_index(walk->vma, addr),
				      linear_page_index(walk->vma, addr)))
			__touched_mark(walk->vma, addr, 1);
		return 0;
	}
	if (folio && folio_maybe_dma_pinned(folio))
		__touched_mark(walk->vma, addr, 1);
	return 0;
}

static const struct mm_walk_ops touched_pinned_ops = {
	.pte_entry	= touched_mark_pinned,
	.walk_lock	= PGWALK_WRLOCK,
};

/* Pinned pages of a shared file mapping's file, mapped here or not. */
static void touched_mark_pinned_cache(struct vm_area_struct *vma)
{
	pgoff_t first = vma->vm_pgoff, last = first + vma_pages(vma) - 1;
	XA_STATE(xas, &vma->vm_file->f_mapping->i_pages, first);
	struct folio *folio;
	pgoff_t from, to;

	rcu_read_lock();
	while ((folio = touched_next_pinned(&xas, last))) {
		/* With the reference, the folio's index is stable. */
		from = max(first, folio->index);
		to = min(last, folio->index + folio_nr_pages(folio) - 1);
		folio_put(folio);
		__touched_mark(vma, vma->vm_start + ((from - first) << PAGE_SHIFT),
			       to - from + 1);
		if (need_resched()) {
			xas_pause(&xas);
			rcu_read_unlock();
			cond_resched();
			rcu_read_lock();
		}
	}
	rcu_read_unlock();
}

/*
 * Start tracking [@start, @end) of @vma, which the caller split to exactly
 * that range: no huge PMDs, read-only page protection, every present entry
 * write-protected, and no page marked but those pinned.
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
	/* Initialised first: __touched_mark() reads it without the lock. */
	smp_store_release(&vma->touched, tv);
	touched_tree_insert(tm, tv);
	spin_unlock(&tm->lock);
	vma_set_page_prot(vma);

	tlb_gather_mmu(&tlb, vma->vm_mm);
	change_protection(&tlb, vma, vma->vm_start, vma->vm_end, 0);
	tlb_finish_mmu(&tlb);

	/*
	 * Every entry is read-only now: GUP-fast pins no more for writing, and
	 * a pin it took before shows in the pin count after this barrier (see
	 * sweep_clear_ptes()).  Only pins taken through this mm's page tables
	 * count, as only writes through them are tracked.  GUP sets
	 * MMF_HAS_PINNED before it pins, so it is read after the barrier too.
	 */
	/* Pairs with try_grab_folio_fast()'s barrier. */
	smp_mb();
	if (test_bit(MMF_HAS_PINNED, &vma->vm_mm->flags)) {
		walk_page_range(vma->vm_mm, vma->vm_start, vma->vm_end,
				&touched_pinned_ops, NULL);
		if (vma_shared_file(vma))
			touched_mark_pinned_cache(vma);
	}
	touched_check_arm(vma);
	return 0;
}

/*
 * Stop tracking @vma and drop its marks.  __touched_mark() reads
 * vma->touched without the tracking lock: faults are kept out by the VMA
 * write lock vm_flags_clear() takes, and, in a file VMA, truncation's
 * marks and zaps by i_mmap_rwsem.
 */
static void touched_vma_stop(struct touched_mm *tm, struct vm_area_struct *vma)
{
	struct address_space *mapping = vma->vm_file ?
					vma->vm_file->f_mapping : NULL;
	struct touched_vma *tv;

	vm_flags_clear(vma, VM_TRACK_TOUCHED);
	if (mapping)
		i_mmap_lock_write(mapping);
	spin_lock(&tm->lock);
	tv = vma->touched;
	vma->touched = NULL;
	if (tv)
		touched_tree_erase(tm, tv);
	spin_unlock(&tm->lock);
	if (mapping)
		i_mmap_unlock_write(mapping);
	touched_vma_destroy(tv);
	vma_set_page_prot(vma);
}

/*
 * Untracking changes the flags of the tracked VMAs in [start, end) and may
 * split them: refuse it, before changing anything, if one is sealed.
 */
static int touched_may_untrack(struct mm_struct *mm, unsigned long start,
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
static int touched_may_track(struct mm_struct *mm, unsigned long start,
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
	if (track)
		touched_check_enable();
	if (mmap_write_lock_killable(mm))
		return -EINTR;
	ret = 0;
	if (track) {
		ret = touched_may_track(mm, start, end);
		if (!ret && !touched_mm_get(mm))
			ret = -ENOMEM;
	} else {
		ret = touched_may_untrack(mm, start, end);
	}
	/* Nothing was ever tracked: nothing to untrack. */
	if (!ret && mm->touched)
		ret = touched_apply(mm, start, end, track);
	mmap_write_unlock(mm);
	return ret;
}

#ifdef CONFIG_DEBUG_TOUCHED_SWEEP
/**
 * touched_track_vma - track all of a VMA, for touched_check.track_all
 * @vma: an untracked VMA
 *
 * Locking: mmap_lock held for writing.
 *
 * Return: 0, or the error tracking it would give.
 */
int touched_track_vma(struct vm_area_struct *vma)
{
	struct touched_mm *tm;
	int ret;

	mmap_assert_write_locked(vma->vm_mm);
	ret = touched_vma_eligible(vma);
	if (ret)
		return ret;
	tm = touched_mm_get(vma->vm_mm);
	if (!tm)
		return -ENOMEM;
	vma_start_write(vma);
	return touched_vma_start(tm, vma);
}
#endif

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
 * and nothing is changed.  A sweep stores @start in @uargs->walk_end
 * first (-EFAULT if it cannot); once it has cleared marks it returns the
 * entries it stored, and gives back the marks of those it could not
 * store (-EFAULT if it stored none).
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
