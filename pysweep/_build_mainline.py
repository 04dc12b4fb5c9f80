"""cffi builder for ``pysweep._mainline``: what the mainline backends need from C.

The ``pagemap_scan`` backend needs ``userfaultfd(2)``, three userfaultfd
ioctls and ``PAGEMAP_SCAN``.  They are kept out of ``pysweep._native`` so
that the touched_sweep binding builds and loads on its own.

The system headers may be older than the kernel that runs the code: Linux
6.1 headers lack ``PAGEMAP_SCAN`` (6.7), ``struct pm_scan_arg``, ``struct
page_region``, ``UFFD_FEATURE_WP_UNPOPULATED`` (6.4) and
``UFFD_FEATURE_WP_ASYNC`` (6.7).  These are stable ABI, so the C source
defines them, copied from the Linux 6.7 uapi, when the headers do not, and
checks the layout with static assertions.  Whether the running kernel
supports them is found out at run time.

The C wrappers return -1 with ``errno`` set; Python turns that into
``OSError``.  Used through ``setup.py`` (``cffi_modules``).
"""

from __future__ import annotations

from cffi import FFI

_SOURCE = r"""
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
"""

_CDEF = """
typedef int... __u64;

struct uffdio_api { __u64 api; __u64 features; __u64 ioctls; };
struct uffdio_range { __u64 start; __u64 len; };
struct uffdio_register { struct uffdio_range range; __u64 mode; __u64 ioctls; };
struct uffdio_writeprotect { struct uffdio_range range; __u64 mode; };

struct page_region { __u64 start; __u64 end; __u64 categories; };
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

#define UFFD_API ...
#define UFFD_USER_MODE_ONLY ...
#define UFFD_FEATURE_WP_UNPOPULATED ...
#define UFFD_FEATURE_WP_ASYNC ...
#define UFFD_FEATURE_EVENT_REMAP ...
#define UFFDIO_REGISTER_MODE_WP ...
#define UFFDIO_WRITEPROTECT_MODE_WP ...
#define PAGE_IS_WPALLOWED ...
#define PAGE_IS_WRITTEN ...
#define PM_SCAN_WP_MATCHING ...
#define PM_SCAN_CHECK_WPASYNC ...

int pysweep_userfaultfd(int flags);
int pysweep_uffdio_api(int fd, struct uffdio_api *api);
int pysweep_uffdio_register(int fd, struct uffdio_register *reg);
int pysweep_uffdio_unregister(int fd, struct uffdio_range *range);
int pysweep_uffdio_writeprotect(int fd, struct uffdio_writeprotect *wp);
long pysweep_pagemap_scan(int fd, struct pm_scan_arg *arg);
"""


def make_ffibuilder() -> FFI:
    """Build the :class:`cffi.FFI` describing ``pysweep._mainline``."""
    builder = FFI()
    builder.cdef(_CDEF)
    builder.set_source("pysweep._mainline", _SOURCE)
    return builder


ffibuilder = make_ffibuilder()
