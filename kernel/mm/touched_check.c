// SPDX-License-Identifier: GPL-2.0
/*
 * CONFIG_DEBUG_TOUCHED_SWEEP: check what touched_sweep(2) promises,
 * independently of the hooks that keep the promise.
 *
 * Entry check.  Every page table update that installs a writable entry
 * (set_ptes(), set_pmd_at(), ptep_set_access_flags() and
 * pmdp_set_access_flags()) in a tracked VMA must find the marks of its
 * pages set: "mark clear => entry read-only", checked where entries
 * change, as page_table_check checks its invariant, rather than where the
 * hooks expect them to change.  A VMA is checked from the moment tracking
 * has write-protected it.
 *
 * Content audit (touched_check.audit=1).  Tracking and every clearing
 * sweep record a hash of each anonymous page whose mark they clear, once
 * the TLB has been flushed; each clearing sweep first, and the address
 * space when it goes away, hash every recorded page whose mark is still
 * clear again.  A page whose contents changed while its mark stayed clear
 * is a write a dumper never copies: through a pin, a plain page reference,
 * a stale TLB entry, or any path the hooks miss.  The audit needs no list
 * of such paths.
 *
 * Shared memory pages (shmem: memfd, tmpfs, MAP_SHARED|MAP_ANONYMOUS,
 * SysV shm) are audited too, but they may also change in the two ways the
 * documentation puts out of scope: write(2) into the page cache, and
 * stores through another mapping.  Those leave an excuse instead: a page is
 * recorded only while this is its only mapping and nothing pins it, in
 * touched_check_shared by page frame as well as in its VMA's record;
 * shmem_write_end() and every writable entry installed for the page, in any
 * mm, drop it from touched_check_shared, and a changed page is reported
 * only if it is still there.  Writes in progress or truncation under the
 * inode lock are looked at again later.  Pages of other file systems are
 * not audited: they are written through paths (iomap, netfs, DAX) that
 * leave no excuse.
 *
 * Track everything (touched_check.track_all=1, also at run time through
 * /sys/module/touched_check/parameters/track_all).  Every eligible VMA
 * that mmap() creates from then on is tracked, so that any program
 * exercises the hooks and the checks.
 *
 * Hold a remote write (touched_check.remote_write_delay_ms=N).  The next
 * write through /proc/PID/mem or ptrace by a task to its own memory waits
 * N milliseconds between taking the page and writing it, so that a test
 * can run a clearing sweep in that window.
 *
 * Reports go to the kernel log, "touched_sweep check:" and a stack trace,
 * rate limited; /sys/kernel/debug/touched_sweep/check_reports counts all.
 */

#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/highmem.h>
#include <linux/jump_label.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/pagewalk.h>
#include <linux/ratelimit.h>
#include <linux/sched/mm.h>
#include <linux/shmem_fs.h>
#include <linux/touched_check.h>
#include <linux/touched_sweep.h>
#include <linux/xarray.h>
#include <linux/xxhash.h>

#include "internal.h"
#include "touched_marks.h"

DEFINE_STATIC_KEY_FALSE(touched_check_on);

static bool audit;
module_param(audit, bool, 0644);
MODULE_PARM_DESC(audit, "Hash pages whose marks are cleared and check them");

static int track_all_set(const char *val, const struct kernel_param *kp)
{
	int ret = param_set_bool(val, kp);

	if (!ret && *(bool *)kp->arg)
		touched_check_enable();
	return ret;
}

static const struct kernel_param_ops track_all_ops = {
	.set = track_all_set,
	.get = param_get_bool,
};

static bool track_all;
module_param_cb(track_all, &track_all_ops, &track_all, 0644);
MODULE_PARM_DESC(track_all, "Track every eligible VMA mmap() creates");

static unsigned int remote_write_delay_ms;
module_param(remote_write_delay_ms, uint, 0644);
MODULE_PARM_DESC(remote_write_delay_ms,
		 "Milliseconds the next /proc/PID/mem or ptrace write of a task to itself waits");

/* Recorded shmem pages, by page frame: the hash, until something excuses it. */
static DEFINE_XARRAY(touched_check_shared);

static atomic_t touched_check_reports;
static DEFINE_RATELIMIT_STATE(touched_check_rs, 5 * HZ, 10);

/**
 * touched_check_enable - turn the entry check on
 *
 * Called before anything is tracked.  Static keys cannot change under
 * mmap_lock, so callers enable it before taking it.
 */
void touched_check_enable(void)
{
	if (!static_key_enabled(&touched_check_on))
		static_branch_enable(&touched_check_on);
}

static void touched_check_report(struct mm_struct *mm, unsigned long addr,
				 const char *what)
{
	atomic_inc(&touched_check_reports);
	if (!__ratelimit(&touched_check_rs))
		return;
	pr_err("touched_sweep check: %s at %#lx (mm %p, in %s[%d])\n",
	       what, addr, mm, current->comm, task_pid_nr(current));
	dump_stack();
}

/*
 * Are the marks of @nr pages from @addr set, or is there nothing to check?
 * Whoever installs the entry holds a lock that keeps the VMA from being
 * split or freed (mmap_lock, the VMA lock or an rmap lock), so the lookup
 * finds the VMA the entry belongs to.
 */
static bool touched_check_marked(struct mm_struct *mm, unsigned long addr,
				 unsigned long nr)
{
	struct touched_mm *tm = READ_ONCE(mm->touched);
	struct vm_area_struct *vma;
	struct touched_vma *tv;
	unsigned long idx, i;
	bool ok = true;

	if (!tm)
		return true;
	rcu_read_lock();
	vma = mtree_load(&mm->mm_mt, addr);
	if (!vma || !vma_touch_tracked(vma) || addr < vma->vm_start ||
	    addr + nr * PAGE_SIZE > vma->vm_end)
		goto out;
	/* Under the lock, @tv is not freed by a split or an untrack. */
	spin_lock(&tm->lock);
	tv = vma->touched;
	if (tv && tv->armed) {
		idx = tv_index(tv, addr);
		for (i = 0; i < nr && ok; i++)
			ok = test_bit(idx + i, tv->marks);
	}
	spin_unlock(&tm->lock);
out:
	rcu_read_unlock();
	return ok;
}

/*
 * @nr page frames from @pfn may change in a way out of scope (a writable
 * entry for them somewhere, write(2)): stop auditing them.
 */
static void touched_check_excuse(unsigned long pfn, unsigned long nr)
{
	unsigned long idx = pfn;
	void *entry;

	if (xa_empty(&touched_check_shared))
		return;
	/* Look without the lock first: almost no page is recorded. */
	rcu_read_lock();
	entry = xa_find(&touched_check_shared, &idx, pfn + nr - 1, XA_PRESENT);
	rcu_read_unlock();
	if (!entry)
		return;
	xa_for_each_range(&touched_check_shared, idx, entry, pfn, pfn + nr - 1)
		xa_erase(&touched_check_shared, idx);
}

void __touched_check_ptes_set(struct mm_struct *mm, unsigned long addr,
			      pte_t pte, unsigned int nr)
{
	if (!pte_present(pte) || !pte_write(pte))
		return;
	touched_check_excuse(pte_pfn(pte), nr);
	if (!touched_check_marked(mm, addr, nr))
		touched_check_report(mm, addr, "writable entry, mark clear");
}

void __touched_check_pmd_set(struct mm_struct *mm, unsigned long addr,
			     pmd_t pmd)
{
	if (!pmd_present(pmd) || !pmd_write(pmd))
		return;
	touched_check_excuse(pmd_pfn(pmd), PMD_SIZE >> PAGE_SHIFT);
	if (!touched_check_marked(mm, addr & PMD_MASK, PMD_SIZE >> PAGE_SHIFT))
		touched_check_report(mm, addr, "writable huge entry, mark clear");
}

/**
 * touched_check_shared_written - write(2) wrote into a shmem folio
 * @folio: the folio, locked
 * @pos: the file position written from
 * @len: the bytes written
 *
 * Out of scope, so no report: the pages written are no longer audited.
 *
 * Locking: the inode lock and the folio lock held.
 */
void touched_check_shared_written(struct folio *folio, loff_t pos,
				  unsigned int len)
{
	size_t from = offset_in_folio(folio, pos);

	if (!len)
		return;
	touched_check_excuse(folio_pfn(folio) + (from >> PAGE_SHIFT),
			     ((from + len - 1) >> PAGE_SHIFT) -
			     (from >> PAGE_SHIFT) + 1);
}

/* What the content audit compares: a page's contents. */
static unsigned long touched_check_hash(struct page *page)
{
	void *addr = kmap_local_page(page);
	u64 hash = xxh64(addr, PAGE_SIZE, 0);

	kunmap_local(addr);
	/* xarray values hold one bit less than a long. */
	return (unsigned long)hash >> 1;
}

/* Pages waiting for their hash, once the TLB flush is done. */
#define TOUCHED_CHECK_PENDING	XA_MARK_0

/**
 * touched_check_cleared - a clearing sweep cleared the mark of a page
 * @tv: the page's VMA's marks
 * @idx: the page
 * @present: a page is mapped there
 *
 * Locking: the page table lock of the page.
 */
void touched_check_cleared(struct touched_vma *tv, unsigned long idx,
			   bool present)
{
	if (!READ_ONCE(audit))
		return;
	if (!present) {
		xa_erase_bh(&tv->hashes, idx);
		return;
	}
	/* Hashed after the flush: a stale TLB entry may still write. */
	xa_lock_bh(&tv->hashes);
	if (!xa_err(__xa_store(&tv->hashes, idx, xa_mk_value(0),
			       GFP_NOWAIT | __GFP_NOWARN)))
		__xa_set_mark(&tv->hashes, idx, TOUCHED_CHECK_PENDING);
	xa_unlock_bh(&tv->hashes);
}

/**
 * touched_check_forget - stop auditing pages
 * @tv: their VMA's marks
 * @first: the first page
 * @last: the page after the last one
 */
void touched_check_forget(struct touched_vma *tv, unsigned long first,
			  unsigned long last)
{
	unsigned long idx;
	void *entry;

	if (last <= first)
		return;
	xa_for_each_range(&tv->hashes, idx, entry, first, last - 1)
		xa_erase_bh(&tv->hashes, idx);
}

/**
 * touched_check_split - give one half of a split VMA its pages' records
 * @to: the half's marks
 * @from: the marks of the VMA before the split
 * @offset: the half's first page in @from
 *
 * The half is checked if the VMA was, and its recorded pages stay audited.
 * A record that finds no memory is dropped: that page goes unaudited.
 *
 * Locking: mmap_lock held for writing, so no sweep records meanwhile, and
 * the tracking lock.
 */
void touched_check_split(struct touched_vma *to, struct touched_vma *from,
			 unsigned long offset)
{
	unsigned long idx;
	void *entry;

	to->armed = from->armed;
	xa_for_each_range(&from->hashes, idx, entry, offset,
			  offset + to->nr_pages - 1) {
		xa_lock_bh(&to->hashes);
		if (!xa_err(__xa_store(&to->hashes, idx - offset, entry,
				       GFP_NOWAIT | __GFP_NOWARN)) &&
		    xa_get_mark(&from->hashes, idx, TOUCHED_CHECK_PENDING))
			__xa_set_mark(&to->hashes, idx - offset,
				      TOUCHED_CHECK_PENDING);
		xa_unlock_bh(&to->hashes);
	}
}

/* The locked page table entry of @addr, or NULL if there is none. */
static pte_t *touched_check_lock_pte(struct mm_struct *mm, unsigned long addr,
				     spinlock_t **ptl)
{
	pmd_t *pmd = mm_find_pmd(mm, addr);

	return pmd ? pte_offset_map_lock(mm, pmd, addr, ptl) : NULL;
}

/* What to do with a page's record after a look at the page. */
enum touched_check_next {
	TOUCHED_CHECK_FORGET,	/* marked, unmapped or not anonymous */
	TOUCHED_CHECK_KEEP,	/* hashed, or still matching its hash */
	TOUCHED_CHECK_LATER,	/* swapped out or migrating: look again */
};

/* Can the content audit look at this file page? */
static bool touched_check_shared_folio(struct folio *folio)
{
	return !folio_test_anon(folio) && !folio_test_large(folio) &&
	       folio->mapping && shmem_mapping(folio->mapping);
}

/*
 * Record a shmem page in touched_check_shared if nothing but this entry
 * can write it: no other mapping and no pin.  Its hash, or 0 if not.
 */
static unsigned long touched_check_shared_record(struct page *page)
{
	struct folio *folio = page_folio(page);
	unsigned long pfn = page_to_pfn(page);
	unsigned long hash = 0;
	void *old;

	/*
	 * Stored before the look at the mappings: an excuse from now on
	 * erases it, and one from before comes after its mapping was added.
	 */
	if (xa_err(xa_store(&touched_check_shared, pfn, xa_mk_value(0),
			    GFP_NOWAIT | __GFP_NOWARN)))
		return 0;
	if (folio_mapcount(folio) == 1 && !folio_maybe_dma_pinned(folio))
		hash = touched_check_hash(page);
	old = xa_cmpxchg(&touched_check_shared, pfn, xa_mk_value(0),
			 hash ? xa_mk_value(hash) : NULL, GFP_NOWAIT);
	return old == xa_mk_value(0) ? hash : 0;
}

/*
 * A recorded shmem page changed while its mark was clear.  A write(2) or a
 * truncation still under the inode lock marks or excuses it before it
 * ends: look again later.  Report it unless it was excused.
 */
static enum touched_check_next
touched_check_shared_changed(struct touched_vma *tv, unsigned long idx,
			     struct page *page, unsigned long hash)
{
	struct folio *folio = page_folio(page);
	unsigned long pfn = page_to_pfn(page);

	/* The contents were read first. */
	smp_rmb();
	if (test_bit(idx, tv->marks))
		return TOUCHED_CHECK_FORGET;
	if (inode_is_locked(folio->mapping->host))
		return TOUCHED_CHECK_LATER;
	/* Excused, or another page recorded in this frame since. */
	if (xa_cmpxchg(&touched_check_shared, pfn, xa_mk_value(hash), NULL,
		       GFP_NOWAIT) != xa_mk_value(hash))
		return TOUCHED_CHECK_FORGET;
	touched_check_report(tv->vma->vm_mm,
			     tv->vma->vm_start + idx * PAGE_SIZE,
			     "shared page contents changed, mark clear");
	return TOUCHED_CHECK_FORGET;
}

/*
 * Hash a page whose mark is clear (@settle), or compare it with its hash.
 */
static enum touched_check_next
touched_check_page(struct mm_struct *mm, struct touched_vma *tv,
		   unsigned long idx, unsigned long hash, bool settle)
{
	enum touched_check_next next = TOUCHED_CHECK_FORGET;
	struct vm_area_struct *vma = tv->vma;
	unsigned long addr = vma->vm_start + idx * PAGE_SIZE;
	unsigned long now;
	struct page *page;
	spinlock_t *ptl;	/* of the page's page table */
	pte_t *pte, ptent;
	bool anon;

	pte = touched_check_lock_pte(mm, addr, &ptl);
	if (!pte)
		return TOUCHED_CHECK_FORGET;
	ptent = ptep_get(pte);
	/* Marked since: the next clearing sweep reports it. */
	if (test_bit(idx, tv->marks))
		goto out;
	/* The contents are kept; compare them once mapped again. */
	if (!pte_present(ptent)) {
		next = pte_none(ptent) ? TOUCHED_CHECK_FORGET :
					 TOUCHED_CHECK_LATER;
		goto out;
	}
	if (pte_write(ptent))
		touched_check_report(mm, addr, "writable entry, mark clear");
	page = vm_normal_page(vma, addr, ptent);
	if (!page)
		goto out;
	anon = PageAnon(page);
	if (!anon && !touched_check_shared_folio(page_folio(page)))
		goto out;
	if (settle) {
		now = anon ? touched_check_hash(page) :
			     touched_check_shared_record(page);
		if (now && !xa_err(xa_store_bh(&tv->hashes, idx,
					       xa_mk_value(now),
					       GFP_NOWAIT | __GFP_NOWARN)))
			next = TOUCHED_CHECK_KEEP;
	} else if (touched_check_hash(page) == hash) {
		next = TOUCHED_CHECK_KEEP;
	} else if (!anon) {
		next = touched_check_shared_changed(tv, idx, page, hash);
	} else {
		touched_check_report(mm, addr,
				     "contents changed, mark clear");
		pr_err("touched_sweep check: vma %#lx-%#lx flags %#lx, entry %#llx, folio refs %d mapped %d pinned %d anon-exclusive %d\n",
		       vma->vm_start, vma->vm_end, vma->vm_flags,
		       (u64)pte_val(ptent), folio_ref_count(page_folio(page)),
		       folio_mapcount(page_folio(page)),
		       folio_maybe_dma_pinned(page_folio(page)),
		       PageAnonExclusive(page));
	}
out:
	pte_unmap_unlock(pte, ptl);
	return next;
}

/*
 * Look at each recorded page of @tv: with @settle, hash the pages waiting
 * for their hash; without, compare the others with theirs.
 */
static void touched_check_walk_vma(struct mm_struct *mm,
				   struct touched_vma *tv, bool settle)
{
	xa_mark_t filter = settle ? TOUCHED_CHECK_PENDING : XA_PRESENT;
	unsigned long idx;
	void *entry;

	xa_for_each_marked(&tv->hashes, idx, entry, filter) {
		if (!settle && xa_get_mark(&tv->hashes, idx,
					   TOUCHED_CHECK_PENDING))
			continue;
		switch (touched_check_page(mm, tv, idx, xa_to_value(entry),
					   settle)) {
		case TOUCHED_CHECK_FORGET:
			xa_erase_bh(&tv->hashes, idx);
			break;
		case TOUCHED_CHECK_KEEP:
			if (!settle)
				break;
			xa_lock_bh(&tv->hashes);
			__xa_clear_mark(&tv->hashes, idx, TOUCHED_CHECK_PENDING);
			xa_unlock_bh(&tv->hashes);
			break;
		case TOUCHED_CHECK_LATER:
			break;
		}
		cond_resched();
	}
}

/*
 * touched_check_walk_vma() over every tracked VMA of @mm, or only over
 * @only if not NULL.
 */
static void touched_check_walk(struct mm_struct *mm, struct touched_vma *only,
			       bool settle)
{
	struct touched_mm *tm = mm->touched;
	struct rb_node *rb;

	if (!READ_ONCE(audit) || !tm)
		return;
	mmap_assert_locked(mm);
	/*
	 * Another clearing sweep may still owe the TLB flush of the pages it
	 * cleared: they stay pending until a later round finds none owed.
	 */
	if (settle && mm_tlb_flush_pending(mm))
		return;
	if (only) {
		touched_check_walk_vma(mm, only, settle);
		return;
	}
	/* The tree's shape changes only under mmap_lock held for writing. */
	for (rb = rb_first(&tm->root); rb; rb = rb_next(rb))
		touched_check_walk_vma(mm, rb_entry(rb, struct touched_vma, rb),
				       settle);
}

/**
 * touched_check_settle - hash the pages a round of a clearing sweep cleared
 * @mm: the mm, after the round's TLB flush
 *
 * Locking: mmap_lock held.
 */
void touched_check_settle(struct mm_struct *mm)
{
	touched_check_walk(mm, NULL, true);
}

/**
 * touched_check_audit - compare the recorded pages with their hashes
 * @mm: the mm
 *
 * Locking: mmap_lock held.
 */
void touched_check_audit(struct mm_struct *mm)
{
	touched_check_walk(mm, NULL, false);
}

static int touched_check_record_pte(pte_t *pte, unsigned long addr,
				    unsigned long next, struct mm_walk *walk)
{
	struct touched_vma *tv = walk->vma->touched;

	if (pte_present(ptep_get(pte)))
		touched_check_cleared(tv, tv_index(tv, addr), true);
	return 0;
}

static const struct mm_walk_ops touched_check_record_ops = {
	.pte_entry	= touched_check_record_pte,
	.walk_lock	= PGWALK_WRLOCK,
};

/**
 * touched_check_arm - a VMA starts being tracked
 * @vma: the VMA, write-protected and its TLB flushed
 *
 * From now on its writable entries are checked, and its pages audited.
 *
 * Locking: mmap_lock held for writing.
 */
void touched_check_arm(struct vm_area_struct *vma)
{
	struct touched_vma *tv = vma->touched;

	tv->armed = true;
	if (!READ_ONCE(audit))
		return;
	walk_page_range(vma->vm_mm, vma->vm_start, vma->vm_end,
			&touched_check_record_ops, NULL);
	/*
	 * This VMA's pages only: other VMAs' waiting pages are settled by the
	 * next clearing sweep's round, and arming n VMAs stays linear.
	 */
	touched_check_walk(vma->vm_mm, tv, true);
}

/**
 * touched_check_mmap - track a new mapping if everything is tracked
 * @vma: the VMA mmap() just created or expanded
 *
 * Locking: mmap_lock held for writing.
 */
void touched_check_mmap(struct vm_area_struct *vma)
{
	if (!READ_ONCE(track_all) || vma_touch_tracked(vma))
		return;
	/* Not eligible, or no memory: it stays untracked. */
	touched_track_vma(vma);
}

/**
 * touched_check_exit - audit an address space before it goes away
 * @mm: the mm, whose last user is gone
 */
void touched_check_exit(struct mm_struct *mm)
{
	if (!READ_ONCE(audit) || !mm->touched)
		return;
	mmap_read_lock(mm);
	touched_check_audit(mm);
	mmap_read_unlock(mm);
}

/**
 * touched_check_remote_write - __access_remote_vm() is about to write a page
 * @mm: the mm it writes
 *
 * Sleeps touched_check.remote_write_delay_ms between taking the page and
 * writing it, once, if the task writes its own memory: other tasks' writes
 * are never held up.  The parameter returns to 0.  A signal ends the wait.
 *
 * Locking: mmap_lock held for reading; sleeps.
 */
void touched_check_remote_write(struct mm_struct *mm)
{
	unsigned int ms;

	if (!READ_ONCE(remote_write_delay_ms) || mm != current->mm)
		return;
	/* One write only: a test that fails cannot leave others held up. */
	ms = xchg(&remote_write_delay_ms, 0);
	if (ms)
		msleep_interruptible(ms);
}

static int __init touched_check_init(void)
{
	if (audit || track_all)
		touched_check_enable();
	debugfs_create_atomic_t("check_reports", 0444,
				debugfs_create_dir("touched_sweep", NULL),
				&touched_check_reports);
	return 0;
}
late_initcall(touched_check_init);
