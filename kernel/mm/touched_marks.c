// SPDX-License-Identifier: GPL-2.0
/*
 * The tracking state behind touched_sweep(2).
 *
 * Every path that maps a page of a tracked VMA writable marks the page
 * "touched" under the page table lock, and every tracked page whose mark is
 * clear is mapped read-only, so its next write faults and marks it.
 *
 * Marks live in a bitmap per tracked VMA (one bit per page, plus a summary
 * bit per group of non-zero words), and each tracked VMA is a node of a
 * per-mm augmented rbtree whose nodes carry a "touched" tag and a subtree
 * tag, the OR of the tags below.  A sweep (mm/touched_sweep.c) descends
 * only into tagged subtrees and, inside a VMA, only into groups with set
 * summary bits, in the manner of radix_tree_for_each_tagged(); its cost
 * follows the touched memory, not the tracked memory.
 *
 * The hooks here keep that state in step with the VMAs through split,
 * mremap(), unmap, fork and exit.  Ranges that stop being tracked because
 * they were unmapped, moved or mapped over are recorded per mm and reported
 * as "gone".
 *
 * See Documentation/userspace-api/touched_sweep.rst.
 */

#include <linux/err.h>
#include <linux/fault-inject.h>
#include <linux/fs.h>
#include <linux/maple_tree.h>
#include <linux/mm.h>
#include <linux/overflow.h>
#include <linux/rbtree_augmented.h>
#include <linux/slab.h>
#include <linux/touched_sweep.h>
#include <linux/vmalloc.h>

#include "touched_marks.h"

/* Own caches, unmerged, so that their object counts tell leaks apart. */
static struct kmem_cache *touched_vma_cachep;
static struct kmem_cache *touched_mm_cachep;

#ifdef CONFIG_FAIL_TOUCHED_SWEEP
static DECLARE_FAULT_ATTR(fail_touched_sweep);

/*
 * Every allocation of tracking state asks first, so that a test can fail
 * each of them in turn (fail-nth) and check that no write goes unreported.
 */
bool touched_should_fail(size_t size)
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
#endif

/*
 * kmalloc() rounds sizes above KMALLOC_MAX_CACHE_SIZE up to a power of two
 * and vmalloc() rounds them up to a page: use whichever wastes less.
 *
 * The size follows a mapping any process may create (a PROT_NONE,
 * MAP_NORESERVE reservation of terabytes), so an allocation that cannot be
 * met fails quietly, without a warning and without the OOM killer: the
 * caller returns -ENOMEM.
 */
#define TOUCHED_MARKS_GFP	(GFP_KERNEL_ACCOUNT | __GFP_NOWARN | __GFP_RETRY_MAYFAIL)

static unsigned long *touched_marks_alloc(unsigned long words)
{
	size_t bytes = array_size(words, sizeof(unsigned long));

	if (touched_should_fail(bytes))
		return NULL;
	if (bytes > KMALLOC_MAX_CACHE_SIZE && !is_power_of_2(bytes))
		return __vmalloc(bytes, TOUCHED_MARKS_GFP | __GFP_ZERO);
	return kvzalloc(bytes, TOUCHED_MARKS_GFP);
}

struct touched_vma *touched_vma_alloc(unsigned long nr_pages)
{
	unsigned long words = BITS_TO_LONGS(nr_pages);
	struct touched_vma *tv;

	if (touched_should_fail(sizeof(*tv)))
		return NULL;
	tv = kmem_cache_zalloc(touched_vma_cachep, GFP_KERNEL_ACCOUNT);
	if (!tv)
		return NULL;
	touched_check_vma_init(tv);
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

void touched_vma_destroy(struct touched_vma *tv)
{
	if (!tv)
		return;
	WARN_ON_ONCE(tv->linked);
	touched_check_vma_free(tv);
	if (tv->marks != &tv->inline_marks)
		kvfree(tv->marks);
	kmem_cache_free(touched_vma_cachep, tv);
}

/* The tree: a node's subtree tag is the OR of the tags below it. */
static inline u8 touched_vma_tag(struct touched_vma *tv)
{
	return tv->tagged;
}

RB_DECLARE_CALLBACKS_MAX(static, touched_rb_cb, struct touched_vma, rb, u8,
			 subtree_tagged, touched_vma_tag)

void touched_tree_insert(struct touched_mm *tm, struct touched_vma *tv)
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

void touched_tree_erase(struct touched_mm *tm, struct touched_vma *tv)
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
	WRITE_ONCE(tv->tagged, 1);
	if (!tv->linked)
		return;
	for (rb = &tv->rb; rb; rb = rb_parent(rb)) {
		struct touched_vma *n = rb_entry(rb, struct touched_vma, rb);

		if (n->subtree_tagged)
			break;
		n->subtree_tagged = 1;
	}
}

/**
 * touched_untag_if_empty - clear the tag of a VMA whose marks are all clear
 * @tm: the tracking state of the VMA's mm
 * @tv: the VMA's tracking state, after tb_summarize()
 *
 * __touched_mark() sets marks without @tm->lock and takes it to tag only a
 * VMA it sees untagged.  The tag is cleared before the summary is looked
 * at again, with a full barrier between that pairs with the one
 * tb_set_range() puts between the marker's stores and its load of the tag:
 * either the summary shows its mark here and the tag stays, or it sees the
 * tag clear and tags the VMA again under the lock.  Then the ancestors are
 * recomputed until one does not change.
 *
 * Locking: @tm->lock held.
 */
void touched_untag_if_empty(struct touched_mm *tm, struct touched_vma *tv)
{
	lockdep_assert_held(&tm->lock);
	if (!tv->tagged || !tb_empty(tv))
		return;
	WRITE_ONCE(tv->tagged, 0);
	/* Pairs with tb_set_range()'s barriers. */
	smp_mb();
	if (!tb_empty(tv)) {
		WRITE_ONCE(tv->tagged, 1);
		return;
	}
	if (tv->linked)
		touched_rb_cb_propagate(&tv->rb, NULL);
}

/*
 * The first tracked VMA with a tag that ends above @addr.  Subtrees whose
 * tag is clear are skipped whole; a subtree is entered on the left only when
 * its parent ends above @addr, so every node visited is on the search path
 * or in a tagged subtree.
 */
struct touched_vma *touched_first_tagged(struct touched_mm *tm,
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
 * The marks are set with atomic bitops and no lock, so the first writes of
 * threads to different pages do not serialise on a lock of the mm; the
 * per-mm lock is taken only to tag a VMA that is not tagged (see
 * touched_untag_if_empty() for how that pairs with a sweep).
 *
 * Locking: a path that makes an entry writable holds the page table lock
 * of the entries, so that a sweep clears the mark either before (and the
 * entry is write-protected again) or after the write is possible.  A mark
 * for contents that changed otherwise is set after the change.  Either
 * way the caller holds what keeps @vma->touched from being replaced or
 * freed: mmap_lock, the VMA lock, or, for a file VMA, i_mmap_rwsem.  May
 * take the per-mm tracking lock.
 */
void __touched_mark(struct vm_area_struct *vma, unsigned long addr,
		    unsigned long nr)
{
	struct touched_mm *tm = vma->vm_mm->touched;
	struct touched_vma *tv = READ_ONCE(vma->touched);
	unsigned long idx;

	if (WARN_ON_ONCE(!tm))
		return;
	if (!tv || addr < vma->vm_start || addr >= vma->vm_end)
		return;
	idx = tv_index(tv, addr);
	/* Orders its stores before the load of the tag. */
	tb_set_range(tv, idx, min(nr, tv->nr_pages - idx));
	if (READ_ONCE(tv->tagged))
		return;
	spin_lock(&tm->lock);
	touched_tag(tm, tv);
	spin_unlock(&tm->lock);
}

/**
 * touched_mapping_changed - mark the pages of a file range in tracked VMAs
 * @mapping: the file's mapping
 * @first: first page offset in the file
 * @last: last page offset in the file, inclusive
 *
 * Truncation and hole punching zero the part of a folio they do not free
 * while it stays mapped, and drop pages that no entry of the tracked VMA
 * maps any more: neither goes through a page table entry of the VMA.
 * Called after the page cache changed, so a sweep that clears a mark set
 * here reports contents the change already shows.
 *
 * Locking: takes i_mmap_rwsem for reading and the per-mm tracking locks;
 * the caller may hold the inode's locks and a folio lock, not mmap_lock.
 */
void touched_mapping_changed(struct address_space *mapping, pgoff_t first,
			     pgoff_t last)
{
	struct vm_area_struct *vma;

	if (!mapping_mapped(mapping))
		return;
	i_mmap_lock_read(mapping);
	vma_interval_tree_foreach(vma, &mapping->i_mmap, first, last) {
		pgoff_t from = max(first, vma->vm_pgoff);
		pgoff_t to = min(last, vma->vm_pgoff + vma_pages(vma) - 1);

		if (!vma_touch_tracked(vma))
			continue;
		__touched_mark(vma, vma->vm_start +
			       ((from - vma->vm_pgoff) << PAGE_SHIFT),
			       to - from + 1);
	}
	i_mmap_unlock_read(mapping);
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
 * @start, and return whether any was set.  Only the words under set summary
 * bits are read, a word at a time: a split copies under the tracking lock,
 * and a VMA made by mremap() has every mark of possibly terabytes set.
 */
static bool touched_copy_marks(struct touched_vma *to,
			       const struct touched_vma *from,
			       unsigned long from_start,
			       unsigned long start, unsigned long end)
{
	unsigned long first = (start - from_start) >> PAGE_SHIFT;
	unsigned long last = (end - from_start) >> PAGE_SHIFT;
	unsigned long group_words = 1UL << from->shift;
	unsigned long wi, next, w, dst, off;
	bool any = false;

	for (wi = first / BITS_PER_LONG; wi < BITS_TO_LONGS(last); wi = next) {
		if (!test_bit(wi >> from->shift, from->summary)) {
			next = round_down(wi, group_words) + group_words;
			continue;
		}
		next = wi + 1;
		w = from->marks[wi];
		if (wi == first / BITS_PER_LONG)
			w &= BITMAP_FIRST_WORD_MASK(first);
		if (wi == (last - 1) / BITS_PER_LONG)
			w &= BITMAP_LAST_WORD_MASK(last);
		if (!w)
			continue;
		any = true;
		if (wi * BITS_PER_LONG < first) {
			/* Only the first word: its bits below @first are clear. */
			tb_or_word(to, 0, w >> (first % BITS_PER_LONG));
			continue;
		}
		dst = wi * BITS_PER_LONG - first;
		off = dst % BITS_PER_LONG;
		tb_or_word(to, dst / BITS_PER_LONG, w << off);
		if (off && (w >> (BITS_PER_LONG - off)))
			tb_or_word(to, dst / BITS_PER_LONG + 1,
				   w >> (BITS_PER_LONG - off));
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
	touched_check_split(ts->lo, ts->old, 0);
	touched_check_split(ts->hi, ts->old, vma_pages(lo));
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
	touched_check_inherit(tv, true);
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
void touched_mm_gone(struct touched_mm *tm, unsigned long start,
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

struct touched_mm *touched_mm_get(struct mm_struct *mm)
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

static int __init touched_marks_init(void)
{
	/* What the documentation promises a tracked VMA costs, marks aside. */
	BUILD_BUG_ON(!IS_ENABLED(CONFIG_DEBUG_TOUCHED_SWEEP) &&
		     sizeof(struct touched_vma) > 128);
	touched_vma_cachep = KMEM_CACHE(touched_vma,
					SLAB_PANIC | SLAB_ACCOUNT | SLAB_NO_MERGE);
	touched_mm_cachep = KMEM_CACHE(touched_mm,
				       SLAB_PANIC | SLAB_ACCOUNT | SLAB_NO_MERGE);
	return 0;
}
subsys_initcall(touched_marks_init);
