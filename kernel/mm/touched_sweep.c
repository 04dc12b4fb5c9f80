// SPDX-License-Identifier: GPL-2.0
/*
 * touched_sweep(2): tell a dumper which memory a process wrote.
 *
 * A caller opts ranges of a target process into tracking.  Every path that
 * maps a page of a tracked VMA writable marks the page "touched" under the
 * page table lock, and every tracked page whose mark is clear is mapped
 * read-only, so its next write faults and marks it.  A sweep reports the
 * marks as coalesced address ranges and, when asked to, clears them and
 * write-protects the pages again under the same lock.
 *
 * Marks live in a bitmap per tracked VMA (one bit per page, plus a summary
 * bit per group of non-zero words), and each tracked VMA is a node of a
 * per-mm augmented rbtree whose nodes carry a "touched" tag and a subtree
 * tag, the OR of the tags below.  A sweep descends only into tagged
 * subtrees and, inside a VMA, only into groups with set summary bits, in
 * the manner of radix_tree_for_each_tagged(); its cost follows the touched
 * memory, not the tracked memory.
 *
 * Ranges that stop being tracked because they were unmapped, moved or
 * mapped over are recorded per mm and reported as "gone".
 *
 * See Documentation/userspace-api/touched_sweep.rst.
 */

#include <linux/err.h>
#include <linux/fault-inject.h>
#include <linux/hugetlb.h>
#include <linux/maple_tree.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/overflow.h>
#include <linux/pagewalk.h>
#include <linux/pid.h>
#include <linux/ptrace.h>
#include <linux/rbtree_augmented.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/swap.h>
#include <linux/swapops.h>
#include <linux/syscalls.h>
#include <linux/touched_sweep.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include <asm/tlb.h>

#include "internal.h"
#include "vma.h"

/*
 * The marks of a tracked VMA: a bitmap with a bit per page, and a summary
 * of at most TOUCHED_SUMMARY_BITS bits, each set when any of the
 * 2^shift words of the bitmap it covers is non-zero.  A summary bit covers
 * one word (64 pages) for VMAs up to 128 MiB and more words above that (16
 * at 2 GiB), so the summary fits in struct touched_vma and tracking costs
 * one bit per page plus one fixed-size object per VMA.
 */
#define TOUCHED_SUMMARY_WORDS	8
#define TOUCHED_SUMMARY_BITS	(TOUCHED_SUMMARY_WORDS * BITS_PER_LONG)

/**
 * struct touched_mm - tracking state of one mm
 * @lock: protects every mark, tag and tree link of this mm
 * @root: the tracked VMAs, ordered by address, augmented by @subtree_tagged
 * @gone: ranges that left tracking and have not been reported by a clearing
 *	sweep yet
 * @gone_lost: a gone range could not be recorded; the whole address space
 *	is reported gone until a clearing sweep of all of it
 *
 * @lock nests inside the page table locks, and nothing sleeps under it.
 * The tree's shape changes only under mmap_lock held for writing, so a
 * sweep holding it for reading sees a stable tree whose tags may change.
 */
struct touched_mm {
	spinlock_t lock;		/* marks, tags and tree links */
	struct rb_root root;
	struct maple_tree gone;
	bool gone_lost;
};

/**
 * struct touched_vma - tracking state of one tracked VMA
 * @rb: node in touched_mm.root
 * @vma: the VMA
 * @nr_pages: pages covered, vma_pages(@vma)
 * @marks: a bit per page; points to @inline_marks when one word will do
 * @linked: @rb is in the tree
 * @tagged: the VMA has marked pages
 * @subtree_tagged: @tagged ORed over the subtree rooted at @rb
 * @shift: log2 of the number of @marks words a @summary bit covers
 * @summary: a bit per 2^@shift words of @marks, set if any is non-zero
 * @inline_marks: @marks of VMAs of up to BITS_PER_LONG pages
 */
struct touched_vma {
	struct rb_node rb;
	struct vm_area_struct *vma;
	unsigned long nr_pages;
	unsigned long *marks;
	bool linked;
	u8 tagged;
	u8 subtree_tagged;
	u8 shift;
	unsigned long summary[TOUCHED_SUMMARY_WORDS];
	unsigned long inline_marks;
};

/* Own caches, unmerged, so that their object counts tell leaks apart. */
static struct kmem_cache *touched_vma_cachep;
static struct kmem_cache *touched_mm_cachep;

#ifdef CONFIG_FAIL_TOUCHED_SWEEP
static DECLARE_FAULT_ATTR(fail_touched_sweep);

/*
 * Every allocation of tracking state asks first, so that a test can fail
 * each of them in turn (fail-nth) and check that no write goes unreported.
 */
static bool touched_should_fail(size_t size)
{
	return should_fail(&fail_touched_sweep, size);
}

#ifdef CONFIG_FAULT_INJECTION_DEBUG_FS
static int __init fail_touched_sweep_debugfs(void)
{
	struct dentry *dir;

	dir = fault_create_debugfs_attr("fail_touched_sweep", NULL,
					&fail_touched_sweep);
	return PTR_ERR_OR_ZERO(dir);
}
late_initcall(fail_touched_sweep_debugfs);
#endif
#else
static inline bool touched_should_fail(size_t size)
{
	return false;
}
#endif

/*
 * kmalloc() rounds sizes above KMALLOC_MAX_CACHE_SIZE up to a power of two
 * and vmalloc() rounds them up to a page: use whichever wastes less.
 */
static unsigned long *touched_marks_alloc(unsigned long words)
{
	size_t bytes = array_size(words, sizeof(unsigned long));

	if (touched_should_fail(bytes))
		return NULL;
	if (bytes > KMALLOC_MAX_CACHE_SIZE && !is_power_of_2(bytes))
		return __vmalloc(bytes, GFP_KERNEL_ACCOUNT | __GFP_ZERO);
	return kvzalloc(bytes, GFP_KERNEL_ACCOUNT);
}

static struct touched_vma *touched_vma_alloc(unsigned long nr_pages)
{
	unsigned long words = BITS_TO_LONGS(nr_pages);
	struct touched_vma *tv;

	if (touched_should_fail(sizeof(*tv)))
		return NULL;
	tv = kmem_cache_zalloc(touched_vma_cachep, GFP_KERNEL_ACCOUNT);
	if (!tv)
		return NULL;
	tv->nr_pages = nr_pages;
	while (DIV_ROUND_UP(words, 1UL << tv->shift) > TOUCHED_SUMMARY_BITS)
		tv->shift++;
	if (words == 1) {
		tv->marks = &tv->inline_marks;
		return tv;
	}
	tv->marks = touched_marks_alloc(words);
	if (!tv->marks) {
		kmem_cache_free(touched_vma_cachep, tv);
		return NULL;
	}
	return tv;
}

static void touched_vma_destroy(struct touched_vma *tv)
{
	if (!tv)
		return;
	WARN_ON_ONCE(tv->linked);
	if (tv->marks != &tv->inline_marks)
		kvfree(tv->marks);
	kmem_cache_free(touched_vma_cachep, tv);
}

/* Pages covered by one summary bit. */
static unsigned long tb_group_pages(const struct touched_vma *tv)
{
	return BITS_PER_LONG << tv->shift;
}

/*
 * @marks is written with atomic bitops because touched_needs_wp() reads it
 * without the per-mm lock (under the page table lock, which makes the bit it
 * reads stable).  The summary is read and written under the per-mm lock.
 */
static void tb_set(struct touched_vma *tv, unsigned long idx)
{
	set_bit(idx, tv->marks);
	__set_bit(idx / tb_group_pages(tv), tv->summary);
}

/* Set the marks of every page. */
static void tb_fill(struct touched_vma *tv)
{
	unsigned long group_pages = tb_group_pages(tv);

	bitmap_set(tv->marks, 0, tv->nr_pages);
	bitmap_set(tv->summary, 0, DIV_ROUND_UP(tv->nr_pages, group_pages));
}

/* Clear the mark of @idx; tb_summarize() must follow. */
static void tb_clear(struct touched_vma *tv, unsigned long idx)
{
	clear_bit(idx, tv->marks);
}

/* Bring the summary bits of pages @first to @last up to date. */
static void tb_summarize(struct touched_vma *tv, unsigned long first,
			 unsigned long last)
{
	unsigned long group_pages = tb_group_pages(tv), group, start, end;

	for (group = first / group_pages; group <= last / group_pages; group++) {
		start = group * group_pages;
		end = min(tv->nr_pages, start + group_pages);
		if (find_next_bit(tv->marks, end, start) >= end)
			__clear_bit(group, tv->summary);
	}
}

static bool tb_empty(const struct touched_vma *tv)
{
	return bitmap_empty(tv->summary, TOUCHED_SUMMARY_BITS);
}

/*
 * The first marked page at or after @idx, or @tv->nr_pages.  Only the
 * words under set summary bits are read, so the cost follows the marks
 * (times the words a summary bit covers), not the size of the VMA.
 */
static unsigned long tb_next(const struct touched_vma *tv, unsigned long idx)
{
	unsigned long group_pages = tb_group_pages(tv);
	unsigned long groups = DIV_ROUND_UP(tv->nr_pages, group_pages);
	unsigned long group, end, found;

	while (idx < tv->nr_pages) {
		group = find_next_bit(tv->summary, groups, idx / group_pages);
		if (group >= groups)
			break;
		idx = max(idx, group * group_pages);
		end = min(tv->nr_pages, (group + 1) * group_pages);
		found = find_next_bit(tv->marks, end, idx);
		if (found < end)
			return found;
		idx = end;
	}
	return tv->nr_pages;
}

static unsigned long tv_index(const struct touched_vma *tv, unsigned long addr)
{
	return (addr - tv->vma->vm_start) >> PAGE_SHIFT;
}

/* The tree: a node's subtree tag is the OR of the tags below it. */
static inline u8 touched_vma_tag(struct touched_vma *tv)
{
	return tv->tagged;
}

RB_DECLARE_CALLBACKS_MAX(static, touched_rb_cb, struct touched_vma, rb, u8,
			 subtree_tagged, touched_vma_tag)

static void touched_tree_insert(struct touched_mm *tm, struct touched_vma *tv)
{
	struct rb_node **link = &tm->root.rb_node, *parent = NULL;
	unsigned long start = tv->vma->vm_start;

	lockdep_assert_held(&tm->lock);
	tv->subtree_tagged = tv->tagged;
	while (*link) {
		struct touched_vma *p = rb_entry(*link, struct touched_vma, rb);

		parent = *link;
		if (tv->tagged)
			p->subtree_tagged = 1;
		if (start < p->vma->vm_start)
			link = &parent->rb_left;
		else
			link = &parent->rb_right;
	}
	rb_link_node(&tv->rb, parent, link);
	rb_insert_augmented(&tv->rb, &tm->root, &touched_rb_cb);
	tv->linked = true;
}

static void touched_tree_erase(struct touched_mm *tm, struct touched_vma *tv)
{
	lockdep_assert_held(&tm->lock);
	if (!tv->linked)
		return;
	rb_erase_augmented(&tv->rb, &tm->root, &touched_rb_cb);
	tv->linked = false;
}

/* Set the tag and walk up until an ancestor's subtree is already tagged. */
static void touched_tag(struct touched_mm *tm, struct touched_vma *tv)
{
	struct rb_node *rb;

	lockdep_assert_held(&tm->lock);
	if (tv->tagged)
		return;
	tv->tagged = 1;
	if (!tv->linked)
		return;
	for (rb = &tv->rb; rb; rb = rb_parent(rb)) {
		struct touched_vma *n = rb_entry(rb, struct touched_vma, rb);

		if (n->subtree_tagged)
			break;
		n->subtree_tagged = 1;
	}
}

/* Clear the tag and recompute the ancestors until one does not change. */
static void touched_untag(struct touched_mm *tm, struct touched_vma *tv)
{
	lockdep_assert_held(&tm->lock);
	if (!tv->tagged)
		return;
	tv->tagged = 0;
	if (tv->linked)
		touched_rb_cb_propagate(&tv->rb, NULL);
}

/*
 * The first tracked VMA with a tag that ends above @addr.  Subtrees whose
 * tag is clear are skipped whole; a subtree is entered on the left only when
 * its parent ends above @addr, so every node visited is on the search path
 * or in a tagged subtree.
 */
static struct touched_vma *touched_first_tagged(struct touched_mm *tm,
						unsigned long addr)
{
	struct rb_node *node = tm->root.rb_node, *child;
	struct touched_vma *tv;

	lockdep_assert_held(&tm->lock);
	while (node) {
		tv = rb_entry(node, struct touched_vma, rb);
		if (!tv->subtree_tagged)
			goto climb;
		if (tv->vma->vm_end > addr) {
			if (node->rb_left) {
				node = node->rb_left;
				continue;
			}
			if (tv->tagged)
				return tv;
		}
right:
		if (node->rb_right) {
			node = node->rb_right;
			continue;
		}
climb:
		/* Up to the first ancestor whose left subtree is done. */
		do {
			child = node;
			node = rb_parent(node);
			if (!node)
				return NULL;
		} while (child != node->rb_left);
		tv = rb_entry(node, struct touched_vma, rb);
		if (tv->tagged)
			return tv;
		goto right;
	}
	return NULL;
}

/**
 * __touched_mark - mark pages of a tracked VMA touched
 * @vma: the tracked VMA
 * @addr: address of the first page
 * @nr: number of pages
 *
 * Sets the marks and tags the VMA in its mm's tree.  Called by the paths
 * that install a writable entry or change a page's contents without a
 * write fault (see touched_mark()).
 *
 * Locking: the caller holds the page table lock of the entries; takes the
 * per-mm tracking lock.
 */
void __touched_mark(struct vm_area_struct *vma, unsigned long addr,
		    unsigned long nr)
{
	struct touched_mm *tm = vma->vm_mm->touched;
	struct touched_vma *tv;
	unsigned long idx, i;

	if (WARN_ON_ONCE(!tm))
		return;
	spin_lock(&tm->lock);
	tv = vma->touched;
	if (tv) {
		idx = tv_index(tv, addr);
		for (i = 0; i < nr && idx + i < tv->nr_pages; i++)
			tb_set(tv, idx + i);
		touched_tag(tm, tv);
	}
	spin_unlock(&tm->lock);
}

/**
 * __touched_needs_wp - is any of these tracked pages unmarked?
 * @vma: the tracked VMA
 * @addr: address of the first page
 * @nr: number of pages
 *
 * Locking: the caller holds the page table lock of the entries, under which
 * their marks cannot change.
 *
 * Return: true if a page in the range is not marked, so its entry must stay
 * read-only.
 */
bool __touched_needs_wp(struct vm_area_struct *vma, unsigned long addr,
			unsigned long nr)
{
	struct touched_vma *tv = READ_ONCE(vma->touched);
	unsigned long idx, i;

	if (!tv)
		return true;
	idx = tv_index(tv, addr);
	for (i = 0; i < nr; i++)
		if (idx + i >= tv->nr_pages || !test_bit(idx + i, tv->marks))
			return true;
	return false;
}

/**
 * touched_vma_free - free the tracking state of a VMA being freed
 * @vma: the VMA
 *
 * The state was taken out of its mm's tree when the VMA was unmapped, or
 * the whole tree is going away with the mm.
 *
 * Locking: none; nothing else can reach @vma.
 */
void touched_vma_free(struct vm_area_struct *vma)
{
	struct touched_vma *tv = vma->touched;

	if (!tv)
		return;
	/* exit_mmap() does not take nodes out of the dying tree. */
	tv->linked = false;
	touched_vma_destroy(tv);
	vma->touched = NULL;
}

/**
 * touched_vma_fork - drop tracking from a child's copy of a VMA
 * @child: the new VMA in the child's mm, fresh from vm_area_dup()
 *
 * A child does not inherit tracking: its writes are its own, and a dumper
 * opts it in if it wants to.  Its page protection becomes the untracked one.
 *
 * Locking: mmap_lock of the child's mm held for writing.
 */
void touched_vma_fork(struct vm_area_struct *child)
{
	if (!vma_touch_tracked(child))
		return;
	vm_flags_clear(child, VM_TRACK_TOUCHED);
	child->touched = NULL;
	vma_set_page_prot(child);
}

/*
 * Copy the marks of @from for [@start, @end) into @to, whose VMA starts at
 * @start, and return whether any was set.
 */
static bool touched_copy_marks(struct touched_vma *to,
			       const struct touched_vma *from,
			       unsigned long from_start,
			       unsigned long start, unsigned long end)
{
	unsigned long first = (start - from_start) >> PAGE_SHIFT;
	unsigned long last = (end - from_start) >> PAGE_SHIFT;
	unsigned long idx;
	bool any = false;

	for (idx = tb_next(from, first); idx < last; idx = tb_next(from, idx + 1)) {
		tb_set(to, idx - first);
		any = true;
	}
	return any;
}

/**
 * touched_vma_split_prepare - allocate the marks of both halves of a split
 * @vma: the tracked VMA being split
 * @new: its copy, with the range it will have after the split
 * @ts: where to keep the allocations until touched_vma_split_commit()
 *
 * Locking: mmap_lock held for writing; called before vma_prepare(), since
 * allocating under the rmap locks could recurse into reclaim.
 *
 * Return: 0, or -ENOMEM.
 */
int touched_vma_split_prepare(struct vm_area_struct *vma,
			      struct vm_area_struct *new,
			      struct touched_split *ts)
{
	unsigned long pages = vma_pages(vma), new_pages = vma_pages(new);

	memset(ts, 0, sizeof(*ts));
	if (!vma_touch_tracked(vma))
		return 0;
	new->touched = NULL;
	if (WARN_ON_ONCE(!vma->touched))
		return -EINVAL;
	ts->old = vma->touched;
	ts->lo = touched_vma_alloc(new->vm_start == vma->vm_start ?
				   new_pages : pages - new_pages);
	ts->hi = touched_vma_alloc(new->vm_start == vma->vm_start ?
				   pages - new_pages : new_pages);
	if (!ts->lo || !ts->hi) {
		touched_vma_destroy(ts->lo);
		touched_vma_destroy(ts->hi);
		memset(ts, 0, sizeof(*ts));
		return -ENOMEM;
	}
	return 0;
}

/**
 * touched_vma_split_commit - move the marks of a split VMA into its halves
 * @vma: the VMA, with its new range
 * @new: the other half, with its range
 * @ts: the allocations from touched_vma_split_prepare()
 *
 * Locking: mmap_lock held for writing, both VMAs write-locked and the rmap
 * locks held (between vma_prepare() and vma_complete()), so neither faults
 * nor rmap walkers nor sweeps can look at the marks meanwhile.
 */
void touched_vma_split_commit(struct vm_area_struct *vma,
			      struct vm_area_struct *new,
			      struct touched_split *ts)
{
	struct touched_mm *tm = vma->vm_mm->touched;
	struct vm_area_struct *lo, *hi;
	unsigned long old_start;

	if (!ts->old)
		return;
	if (new->vm_start < vma->vm_start) {
		lo = new;
		hi = vma;
	} else {
		lo = vma;
		hi = new;
	}
	old_start = lo->vm_start;

	spin_lock(&tm->lock);
	ts->lo->vma = lo;
	ts->hi->vma = hi;
	if (touched_copy_marks(ts->lo, ts->old, old_start, lo->vm_start,
			       lo->vm_end))
		ts->lo->tagged = 1;
	if (touched_copy_marks(ts->hi, ts->old, old_start, hi->vm_start,
			       hi->vm_end))
		ts->hi->tagged = 1;
	touched_tree_erase(tm, ts->old);
	lo->touched = ts->lo;
	hi->touched = ts->hi;
	touched_tree_insert(tm, ts->lo);
	touched_tree_insert(tm, ts->hi);
	spin_unlock(&tm->lock);
	ts->lo = NULL;
	ts->hi = NULL;
}

/**
 * touched_vma_split_finish - free what a split no longer needs
 * @ts: the state of touched_vma_split_prepare()
 *
 * Frees the old marks after a split, or the unused allocations after a
 * split that failed.
 *
 * Locking: mmap_lock held for writing, rmap locks released.
 */
void touched_vma_split_finish(struct touched_split *ts)
{
	if (ts->lo || ts->hi) {
		/* The split failed: the old marks stay in place. */
		touched_vma_destroy(ts->lo);
		touched_vma_destroy(ts->hi);
	} else if (ts->old) {
		touched_vma_destroy(ts->old);
	}
	memset(ts, 0, sizeof(*ts));
}

/**
 * touched_vma_copy - give the target of an mremap() move its marks
 * @new: the new VMA, a copy of a tracked VMA with its new range
 *
 * The moved pages carry no record of what was written before the move, and
 * the dumper's image of the new range is whatever it had of the old one, so
 * every page of the new range starts touched.  The old range is reported
 * gone when it is unmapped.
 *
 * Locking: mmap_lock held for writing; @new is not linked yet.
 *
 * Return: 0, or -ENOMEM.
 */
int touched_vma_copy(struct vm_area_struct *new)
{
	struct touched_vma *tv;

	new->touched = NULL;
	if (!vma_touch_tracked(new))
		return 0;
	tv = touched_vma_alloc(vma_pages(new));
	if (!tv)
		return -ENOMEM;
	tv->vma = new;
	tb_fill(tv);
	tv->tagged = 1;
	new->touched = tv;
	return 0;
}

/**
 * touched_vma_link - put a VMA made by touched_vma_copy() into the tree
 * @new: the VMA, now linked into its mm
 *
 * Locking: mmap_lock held for writing.
 */
void touched_vma_link(struct vm_area_struct *new)
{
	struct touched_mm *tm = new->vm_mm->touched;

	if (!new->touched)
		return;
	spin_lock(&tm->lock);
	touched_tree_insert(tm, new->touched);
	spin_unlock(&tm->lock);
}

/* Remember that [start, end) left tracking. */
static void touched_mm_gone(struct touched_mm *tm, unsigned long start,
			    unsigned long end)
{
	if (start >= end)
		return;
	if (touched_should_fail(end - start) ||
	    mtree_store_range(&tm->gone, start, end - 1, xa_mk_value(1),
			      GFP_KERNEL_ACCOUNT))
		WRITE_ONCE(tm->gone_lost, true);
}

/**
 * touched_range_gone - report a range of a tracked VMA as gone
 * @vma: the tracked VMA
 * @start: start of the range
 * @end: end of the range
 *
 * For ranges whose contents left while the VMA stayed: the source of
 * mremap(MREMAP_DONTUNMAP), or of a move whose unmap of the source failed
 * for lack of memory.
 *
 * Locking: mmap_lock held for writing.
 */
void touched_range_gone(struct vm_area_struct *vma, unsigned long start,
			unsigned long end)
{
	if (vma_touch_tracked(vma))
		touched_mm_gone(vma->vm_mm->touched, start, end);
}

/**
 * touched_vmas_unmapped - forget unmapped VMAs and report them gone
 * @mm: the mm
 * @mas_detach: the VMAs detached by munmap(), mremap() or mmap(MAP_FIXED)
 *
 * Locking: mmap_lock held for writing, before it may be downgraded: once
 * a sweep can run, the VMAs must be out of the tree.
 */
void touched_vmas_unmapped(struct mm_struct *mm, struct ma_state *mas_detach)
{
	struct touched_mm *tm = mm->touched;
	struct vm_area_struct *vma;

	if (!tm)
		return;
	mmap_assert_write_locked(mm);
	mas_set(mas_detach, 0);
	mas_for_each(mas_detach, vma, ULONG_MAX) {
		if (!vma->touched)
			continue;
		spin_lock(&tm->lock);
		touched_tree_erase(tm, vma->touched);
		spin_unlock(&tm->lock);
		touched_mm_gone(tm, vma->vm_start, vma->vm_end);
	}
	mas_set(mas_detach, 0);
}

/**
 * touched_mm_init - start a new mm without tracking state
 * @mm: the mm, possibly a byte copy of its parent's
 */
void touched_mm_init(struct mm_struct *mm)
{
	mm->touched = NULL;
}

/**
 * touched_mm_free - free the tracking state of an mm whose VMAs are gone
 * @mm: the mm, after exit_mmap()
 *
 * Called when the last user of @mm goes away rather than when the mm itself
 * is freed, which a lazy TLB reference may delay for long.  Nothing can
 * reach the state any more: sweeps hold a user reference, and exit_mmap()
 * has unlinked every VMA from the rmap.
 */
void touched_mm_free(struct mm_struct *mm)
{
	struct touched_mm *tm = mm->touched;

	if (!tm)
		return;
	mtree_destroy(&tm->gone);
	kmem_cache_free(touched_mm_cachep, tm);
	mm->touched = NULL;
}

static struct touched_mm *touched_mm_get(struct mm_struct *mm)
{
	struct touched_mm *tm = mm->touched;

	mmap_assert_write_locked(mm);
	if (tm)
		return tm;
	if (touched_should_fail(sizeof(*tm)))
		return NULL;
	tm = kmem_cache_zalloc(touched_mm_cachep, GFP_KERNEL_ACCOUNT);
	if (!tm)
		return NULL;
	spin_lock_init(&tm->lock);
	tm->root = RB_ROOT;
	mt_init(&tm->gone);
	mm->touched = tm;
	return tm;
}

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

static int __init touched_sweep_init(void)
{
	/* What the documentation promises a tracked VMA costs, marks aside. */
	BUILD_BUG_ON(sizeof(struct touched_vma) > 128);
	touched_vma_cachep = KMEM_CACHE(touched_vma,
					SLAB_PANIC | SLAB_ACCOUNT | SLAB_NO_MERGE);
	touched_mm_cachep = KMEM_CACHE(touched_mm,
				       SLAB_PANIC | SLAB_ACCOUNT | SLAB_NO_MERGE);
	return 0;
}
subsys_initcall(touched_sweep_init);

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
