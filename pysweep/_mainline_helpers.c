/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The C half of pysweep._mainline, compiled by pysweep/_build_mainline.py:
 * userfaultfd(2), its ioctls and PAGEMAP_SCAN for the mainline backends.
 */
#include <errno.h>
#include <stddef.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <linux/types.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>

#ifndef PAGEMAP_SCAN
/* From include/uapi/linux/fs.h of Linux 6.7. */
# ifndef PROCFS_IOCTL_MAGIC
#  define PROCFS_IOCTL_MAGIC 'f'
# endif
# define PAGEMAP_SCAN _IOWR(PROCFS_IOCTL_MAGIC, 16, struct pm_scan_arg)

# define PAGE_IS_WPALLOWED	(1 << 0)
# define PAGE_IS_WRITTEN	(1 << 1)
# define PAGE_IS_FILE		(1 << 2)
# define PAGE_IS_PRESENT	(1 << 3)
# define PAGE_IS_SWAPPED	(1 << 4)
# define PAGE_IS_PFNZERO	(1 << 5)
# define PAGE_IS_HUGE		(1 << 6)
# define PAGE_IS_SOFT_DIRTY	(1 << 7)

struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

# define PM_SCAN_WP_MATCHING	(1 << 0)
# define PM_SCAN_CHECK_WPASYNC	(1 << 1)

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};
#endif

/* From include/uapi/linux/userfaultfd.h of Linux 6.7. */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
# define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
# define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
# define UFFD_USER_MODE_ONLY 1
#endif

_Static_assert(sizeof(struct page_region) == 24, "struct page_region");
_Static_assert(sizeof(struct pm_scan_arg) == 96, "struct pm_scan_arg");
_Static_assert(offsetof(struct pm_scan_arg, walk_end) == 32, "pm_scan_arg.walk_end");
_Static_assert(offsetof(struct pm_scan_arg, vec) == 40, "pm_scan_arg.vec");
_Static_assert(offsetof(struct pm_scan_arg, return_mask) == 88, "pm_scan_arg.return_mask");
_Static_assert(PAGEMAP_SCAN == 0xc0606610, "PAGEMAP_SCAN");
_Static_assert(sizeof(struct uffdio_api) == 24, "struct uffdio_api");
_Static_assert(sizeof(struct uffdio_register) == 32, "struct uffdio_register");
_Static_assert(sizeof(struct uffdio_writeprotect) == 24, "struct uffdio_writeprotect");

static int pysweep_userfaultfd(int flags)
{
#ifdef __NR_userfaultfd
	return (int)syscall(__NR_userfaultfd, (long)flags);
#else
	errno = ENOSYS;
	return -1;
#endif
}

static int pysweep_uffdio_api(int fd, struct uffdio_api *api)
{
	return ioctl(fd, UFFDIO_API, api);
}

static int pysweep_uffdio_register(int fd, struct uffdio_register *reg)
{
	return ioctl(fd, UFFDIO_REGISTER, reg);
}

static int pysweep_uffdio_unregister(int fd, struct uffdio_range *range)
{
	return ioctl(fd, UFFDIO_UNREGISTER, range);
}

static int pysweep_uffdio_writeprotect(int fd, struct uffdio_writeprotect *wp)
{
	return ioctl(fd, UFFDIO_WRITEPROTECT, wp);
}

static long pysweep_pagemap_scan(int fd, struct pm_scan_arg *arg)
{
	return ioctl(fd, PAGEMAP_SCAN, arg);
}
