/* SPDX-License-Identifier: GPL-2.0 */
/*
 * CONFIG_DEBUG_TOUCHED_SWEEP: the page table update hooks of the check of
 * touched_sweep(2)'s invariant, the excuse write(2) into shmem leaves for
 * its content audit, and its test delay point, see mm/touched_check.c.
 * Included where entries are set, so it needs no more than the page table
 * types.
 */
#ifndef _LINUX_TOUCHED_CHECK_H
#define _LINUX_TOUCHED_CHECK_H

struct folio;
struct mm_struct;
struct vm_area_struct;

#ifdef CONFIG_DEBUG_TOUCHED_SWEEP
#include <linux/jump_label.h>

DECLARE_STATIC_KEY_FALSE(touched_check_on);

void __touched_check_ptes_set(struct mm_struct *mm, unsigned long addr,
			      pte_t pte, unsigned int nr);
void __touched_check_pmd_set(struct mm_struct *mm, unsigned long addr,
			     pmd_t pmd);
void touched_check_enable(void);
void touched_check_mmap(struct vm_area_struct *vma);
void touched_check_exit(struct mm_struct *mm);
void touched_check_remote_write(struct mm_struct *mm);
void touched_check_shared_written(struct folio *folio, loff_t pos,
				  unsigned int len);

/* Entries set writable in a tracked VMA must have their pages marked. */
static inline void touched_check_ptes_set(struct mm_struct *mm,
					  unsigned long addr, pte_t pte,
					  unsigned int nr)
{
	if (static_branch_unlikely(&touched_check_on))
		__touched_check_ptes_set(mm, addr, pte, nr);
}

static inline void touched_check_pmd_set(struct mm_struct *mm,
					 unsigned long addr, pmd_t pmd)
{
	if (static_branch_unlikely(&touched_check_on))
		__touched_check_pmd_set(mm, addr, pmd);
}

#else /* !CONFIG_DEBUG_TOUCHED_SWEEP */

static inline void touched_check_ptes_set(struct mm_struct *mm,
					  unsigned long addr, pte_t pte,
					  unsigned int nr)
{
}

static inline void touched_check_pmd_set(struct mm_struct *mm,
					 unsigned long addr, pmd_t pmd)
{
}

static inline void touched_check_enable(void) {}
static inline void touched_check_mmap(struct vm_area_struct *vma) {}
static inline void touched_check_exit(struct mm_struct *mm) {}
static inline void touched_check_remote_write(struct mm_struct *mm) {}
static inline void touched_check_shared_written(struct folio *folio,
						loff_t pos, unsigned int len)
{
}

#endif /* CONFIG_DEBUG_TOUCHED_SWEEP */

#endif /* _LINUX_TOUCHED_CHECK_H */
