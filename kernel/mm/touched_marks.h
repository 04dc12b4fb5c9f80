/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The tracking state of touched_sweep(2), kept by mm/touched_marks.c and
 * swept by mm/touched_sweep.c.
 */
#ifndef _MM_TOUCHED_MARKS_H
#define _MM_TOUCHED_MARKS_H

#include <linux/atomic.h>
#include <linux/bitmap.h>
#include <linux/bitops.h>
#include <linux/log2.h>
#include <linux/maple_tree.h>
#include <linux/minmax.h>
#include <linux/mm_types.h>
#include <linux/rbtree.h>
#include <linux/spinlock.h>
#include <linux/xarray.h>

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
 * @lock: protects the tags and tree links of this mm, and the clearing of
 *	summary bits
 * @root: the tracked VMAs, ordered by address, augmented by @subtree_tagged
 * @gone: ranges that left tracking and have not been reported by a clearing
 *	sweep yet
 * @gone_lost: a gone range could not be recorded; the whole address space
 *	is reported gone until a clearing sweep of all of it
 *
 * @lock nests inside the page table locks, and nothing sleeps under it.
 * Marks are set without it (see __touched_mark()), so a write fault takes
 * it only when its VMA goes from untagged to tagged.  The tree's shape
 * changes only under mmap_lock held for writing, so a sweep holding it for
 * reading sees a stable tree whose tags may change.
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
 * @tagged: the VMA may have marked pages; set only under touched_mm.lock,
 *	read without it by __touched_mark()
 * @subtree_tagged: @tagged ORed over the subtree rooted at @rb
 * @shift: log2 of the number of @marks words a @summary bit covers
 * @summary: a bit per 2^@shift words of @marks, set if any is non-zero
 * @inline_marks: @marks of VMAs of up to BITS_PER_LONG pages
 * @armed: CONFIG_DEBUG_TOUCHED_SWEEP checks the VMA's writable entries
 * @hashes: CONFIG_DEBUG_TOUCHED_SWEEP's record of pages whose marks were
 *	cleared
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
#ifdef CONFIG_DEBUG_TOUCHED_SWEEP
	bool armed;			/* tracking has write-protected it */
	struct xarray hashes;		/* of pages audited, by index */
#endif
};

/*
 * log2 of the pages one summary bit covers.  Group arithmetic shifts by it
 * rather than dividing by the group size: the compiler cannot tell that
 * the size is a power of two, and a division costs the write fault and
 * each page table a sweep visits tens of cycles.
 */
static inline unsigned int tb_group_order(const struct touched_vma *tv)
{
	return tv->shift + ilog2(BITS_PER_LONG);
}

/* Summary bits in use: groups that hold a page of the VMA. */
static inline unsigned long tb_groups(const struct touched_vma *tv)
{
	return ((tv->nr_pages - 1) >> tb_group_order(tv)) + 1;
}

/*
 * Marks and summary bits are set without the per-mm lock, by paths that
 * hold the page table lock of the entries or nothing of the tracking state
 * at all, so every change to @marks and @summary of a VMA others can see
 * is an atomic read-modify-write of its word.  A summary bit is cleared
 * only under the per-mm lock, and only by tb_summarize(), which pairs with
 * tb_set_range() so that a mark set meanwhile keeps its summary bit.
 */

/* The bits of word @wi of a bitmap that lie in [@start, @end). */
static inline unsigned long tb_word_mask(unsigned long wi, unsigned long start,
					 unsigned long end)
{
	unsigned long mask = ~0UL;

	if (wi == BIT_WORD(start))
		mask &= BITMAP_FIRST_WORD_MASK(start);
	if (wi == BIT_WORD(end - 1))
		mask &= BITMAP_LAST_WORD_MASK(end);
	return mask;
}

/* Atomically set bits [@start, @start + @nr) of @map, a word at a time. */
static inline void tb_or_bits(unsigned long *map, unsigned long start,
			      unsigned long nr)
{
	unsigned long end = start + nr, wi;

	for (wi = BIT_WORD(start); wi < BITS_TO_LONGS(end); wi++)
		atomic_long_or(tb_word_mask(wi, start, end),
			       (atomic_long_t *)&map[wi]);
}

/* Atomically clear bits [@start, @start + @nr) of @map, a word at a time. */
static inline void tb_andnot_bits(unsigned long *map, unsigned long start,
				  unsigned long nr)
{
	unsigned long end = start + nr, wi;

	for (wi = BIT_WORD(start); wi < BITS_TO_LONGS(end); wi++)
		atomic_long_andnot(tb_word_mask(wi, start, end),
				   (atomic_long_t *)&map[wi]);
}

/*
 * Set the marks of @nr pages from @idx, then their summary bits.  The
 * barrier between pairs with tb_summarize()'s: either it sees the new
 * mark, or the summary bit is set after it cleared it.  Every store here
 * is ordered before the caller's later loads (see __touched_mark()).
 */
static inline void tb_set_range(struct touched_vma *tv, unsigned long idx,
				unsigned long nr)
{
	unsigned int order = tb_group_order(tv);
	unsigned long first = idx >> order, last;

	if (!nr)
		return;
	last = (idx + nr - 1) >> order;
	if (nr == 1)
		set_bit(idx, tv->marks);
	else
		tb_or_bits(tv->marks, idx, nr);
	/* Pairs with tb_summarize()'s barrier. */
	smp_mb__after_atomic();
	if (first == last && test_bit(first, tv->summary))
		return;
	tb_or_bits(tv->summary, first, last - first + 1);
	/* Pairs with touched_untag_if_empty()'s barrier. */
	smp_mb__after_atomic();
}

/*
 * Copy the marks of pages [@first, @first + @nr) into @dst from bit 0, a
 * word at a time; @dst's bits from @nr on are cleared.
 */
static inline void tb_get_marks(const struct touched_vma *tv,
				unsigned long first, unsigned long nr,
				unsigned long *dst)
{
	unsigned long off = first % BITS_PER_LONG, wi = BIT_WORD(first);
	unsigned long words = BITS_TO_LONGS(tv->nr_pages), k, w;

	for (k = 0; k < BITS_TO_LONGS(nr); k++, wi++) {
		w = READ_ONCE(tv->marks[wi]) >> off;
		if (off && wi + 1 < words)
			w |= READ_ONCE(tv->marks[wi + 1]) << (BITS_PER_LONG - off);
		dst[k] = w;
	}
	if (nr % BITS_PER_LONG)
		dst[k - 1] &= BITMAP_LAST_WORD_MASK(nr);
}

/*
 * Clear the mark of page @first + i for every bit i set in @bits, which has
 * no bit set from @nr on; tb_summarize() must follow.
 */
static inline void tb_clear_marks(struct touched_vma *tv, unsigned long first,
				  const unsigned long *bits, unsigned long nr)
{
	unsigned long off = first % BITS_PER_LONG, wi = BIT_WORD(first), k;

	for (k = 0; k < BITS_TO_LONGS(nr); k++, wi++) {
		if (!bits[k])
			continue;
		atomic_long_andnot(bits[k] << off,
				   (atomic_long_t *)&tv->marks[wi]);
		if (off && bits[k] >> (BITS_PER_LONG - off))
			atomic_long_andnot(bits[k] >> (BITS_PER_LONG - off),
					   (atomic_long_t *)&tv->marks[wi + 1]);
	}
}

/* OR @w into word @wi of the marks of @tv, which no one else can see yet. */
static inline void tb_or_word(struct touched_vma *tv, unsigned long wi,
			      unsigned long w)
{
	tv->marks[wi] |= w;
	__set_bit(wi >> tv->shift, tv->summary);
}

/* Set the marks of every page, of a VMA no one else can see yet. */
static inline void tb_fill(struct touched_vma *tv)
{
	bitmap_set(tv->marks, 0, tv->nr_pages);
	bitmap_set(tv->summary, 0, tb_groups(tv));
}

/*
 * Are any of the marks of summary group @group set?  A group is whole
 * words, and no bit past @tv->nr_pages is ever set.
 */
static inline bool tb_group_marked(const struct touched_vma *tv,
				   unsigned long group)
{
	unsigned long wi = group << tv->shift;
	unsigned long end = min(BITS_TO_LONGS(tv->nr_pages),
				wi + (1UL << tv->shift));

	for (; wi < end; wi++)
		if (READ_ONCE(tv->marks[wi]))
			return true;
	return false;
}

/*
 * Bring the summary bits of pages @first to @last up to date after marks
 * were cleared.  A bit is cleared before its group is looked at, and the
 * barrier between pairs with tb_set_range()'s, so a mark set concurrently
 * is either seen here or sets the bit again afterwards.  Sweeps read the
 * summary under the per-mm lock, so none sees a bit clear meanwhile.
 *
 * Locking: the per-mm lock.
 */
static inline void tb_summarize(struct touched_vma *tv,
				unsigned long first, unsigned long last)
{
	unsigned int order = tb_group_order(tv);
	unsigned long group;

	for (group = first >> order; group <= last >> order; group++) {
		if (!test_bit(group, tv->summary))
			continue;
		clear_bit(group, tv->summary);
		/* Pairs with tb_set_range()'s barrier. */
		smp_mb__after_atomic();
		if (tb_group_marked(tv, group))
			set_bit(group, tv->summary);
	}
}

static inline bool tb_empty(const struct touched_vma *tv)
{
	return bitmap_empty(tv->summary, TOUCHED_SUMMARY_BITS);
}

/*
 * find_next_bit() for the short scans of tb_next(), inline: the first set
 * bit of @map in [@start, @nr), or @nr.  A sparse sweep makes two such
 * scans per page table it visits, of at most TOUCHED_SUMMARY_WORDS and
 * 2^shift words, and the call costs as much as the scan.
 */
static __always_inline unsigned long tb_find_next(const unsigned long *map,
						  unsigned long nr,
						  unsigned long start)
{
	unsigned long wi, word;

	if (start >= nr)
		return nr;
	wi = BIT_WORD(start);
	word = READ_ONCE(map[wi]) & BITMAP_FIRST_WORD_MASK(start);
	while (!word) {
		if (++wi >= BITS_TO_LONGS(nr))
			return nr;
		word = READ_ONCE(map[wi]);
	}
	return min(wi * BITS_PER_LONG + __ffs(word), nr);
}

/*
 * The first marked page at or after @idx, or @tv->nr_pages.  Only the
 * words under set summary bits are read, so the cost follows the marks
 * (times the words a summary bit covers), not the size of the VMA.
 */
static __always_inline unsigned long tb_next(const struct touched_vma *tv,
					     unsigned long idx)
{
	unsigned int order = tb_group_order(tv);
	unsigned long groups = tb_groups(tv);
	unsigned long group, end, found;

	while (idx < tv->nr_pages) {
		group = tb_find_next(tv->summary, groups, idx >> order);
		if (group >= groups)
			break;
		idx = max(idx, group << order);
		end = min(tv->nr_pages, (group + 1) << order);
		found = tb_find_next(tv->marks, end, idx);
		if (found < end)
			return found;
		idx = end;
	}
	return tv->nr_pages;
}

static inline unsigned long tv_index(const struct touched_vma *tv, unsigned long addr)
{
	return (addr - tv->vma->vm_start) >> PAGE_SHIFT;
}

#ifdef CONFIG_FAIL_TOUCHED_SWEEP
bool touched_should_fail(size_t size);
#else
static inline bool touched_should_fail(size_t size)
{
	return false;
}
#endif

#ifdef CONFIG_DEBUG_TOUCHED_SWEEP
void touched_check_cleared(struct touched_vma *tv, unsigned long idx,
			   bool present);
void touched_check_forget(struct touched_vma *tv, unsigned long first,
			  unsigned long last);
void touched_check_settle(struct mm_struct *mm);
void touched_check_audit(struct mm_struct *mm);
void touched_check_arm(struct vm_area_struct *vma);
int touched_track_vma(struct vm_area_struct *vma);

/* Freed from an RCU callback with the VMA, so the lock is taken _bh. */
static inline void touched_check_vma_init(struct touched_vma *tv)
{
	xa_init_flags(&tv->hashes, XA_FLAGS_LOCK_BH);
}

static inline void touched_check_vma_free(struct touched_vma *tv)
{
	xa_destroy(&tv->hashes);
}

void touched_check_split(struct touched_vma *to, struct touched_vma *from,
			 unsigned long offset);

/* A moved copy is checked: tracking went on in its old range. */
static inline void touched_check_inherit(struct touched_vma *to, bool armed)
{
	to->armed = armed;
}
#else
static inline void touched_check_cleared(struct touched_vma *tv,
					 unsigned long idx, bool present)
{
}

static inline void touched_check_forget(struct touched_vma *tv,
					unsigned long first, unsigned long last)
{
}

static inline void touched_check_settle(struct mm_struct *mm) {}
static inline void touched_check_audit(struct mm_struct *mm) {}
static inline void touched_check_arm(struct vm_area_struct *vma) {}
static inline void touched_check_vma_init(struct touched_vma *tv) {}
static inline void touched_check_vma_free(struct touched_vma *tv) {}
static inline void touched_check_inherit(struct touched_vma *to, bool armed) {}

static inline void touched_check_split(struct touched_vma *to,
				       struct touched_vma *from,
				       unsigned long offset)
{
}
#endif

struct touched_vma *touched_vma_alloc(unsigned long nr_pages);
void touched_vma_destroy(struct touched_vma *tv);
void touched_tree_insert(struct touched_mm *tm, struct touched_vma *tv);
void touched_tree_erase(struct touched_mm *tm, struct touched_vma *tv);
void touched_untag_if_empty(struct touched_mm *tm, struct touched_vma *tv);
struct touched_vma *touched_first_tagged(struct touched_mm *tm,
					 unsigned long addr);
struct touched_mm *touched_mm_get(struct mm_struct *mm);
void touched_mm_gone(struct touched_mm *tm, unsigned long start,
		     unsigned long end);

#endif /* _MM_TOUCHED_MARKS_H */
