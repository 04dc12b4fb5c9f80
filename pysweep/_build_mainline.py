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

The C source is ``_mainline_helpers.c``.  The C wrappers return -1 with ``errno`` set; Python turns that into
``OSError``.  Used through ``setup.py`` (``cffi_modules``).
"""

from __future__ import annotations

import os
from pathlib import Path

from cffi import FFI

# The C source lives in a file of its own, so that editors and compilers see C.
_SOURCE_FILE = Path(__file__).with_name("_mainline_helpers.c")

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


def _relative(path: Path) -> str:
    # setuptools wants the dependencies of an extension relative to the project.
    return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)


def make_ffibuilder() -> FFI:
    """Build the :class:`cffi.FFI` describing ``pysweep._mainline``."""
    builder = FFI()
    builder.cdef(_CDEF)
    builder.set_source("pysweep._mainline", _SOURCE_FILE.read_text(), depends=[_relative(_SOURCE_FILE)])
    return builder


ffibuilder = make_ffibuilder()
