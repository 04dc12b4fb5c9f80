"""The ``pagemap_scan`` backend: userfaultfd asynchronous write-protection
and the ``PAGEMAP_SCAN`` ioctl (Linux 6.7+), for the calling process only.

Tracking registers the range with a userfaultfd opened with
``UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED`` and write-protects
it.  A write to a protected page then lifts the protection in the fault
handler, with no message to user space, and the page table entry says the
page was written.  ``PAGEMAP_SCAN`` on ``/proc/self/pagemap`` lists the
written pages and, for a clearing sweep, protects them again in the same
page table walk under the page table lock.

Guarantees and costs:

- The calling process only: a userfaultfd watches the address space of the
  process that opened it, and ``/proc/PID/pagemap`` accepts
  ``PAGEMAP_SCAN`` only for that address space.
- Atomic: each page is tested and protected again under its page table
  lock, so writes racing with a clearing sweep are either reported now or
  marked for the next sweep.
- Clearing applies to the swept window only.
- A sweep costs time in proportion to the tracked memory in the window
  (the page tables are walked), not to what was written.
- No ``GONE``: an unmapped tracked range is simply no longer reported.
  ``mremap(2)`` drops the registration from the moved range (this backend
  does not ask for ``UFFD_FEATURE_EVENT_REMAP``).  Memory mapped over a
  tracked range is not registered: a sweep over it fails with ``EPERM``
  (``PM_SCAN_CHECK_WPASYNC``) until it is tracked again.
- Zaps are not reported in general: in shared and file mappings a zap
  (``MADV_DONTNEED``, ``MADV_REMOVE``, hole punching) of a clean page
  leaves a write-protect marker, not a written page.  In private anonymous
  memory the kernel drops the markers instead, and ``PAGEMAP_SCAN`` counts
  the empty entries as written, so there the whole zapped range is
  reported, pages never populated included.
- Needs ``userfaultfd(2)``: ``vm.unprivileged_userfaultfd``, ``CAP_SYS_PTRACE``
  or ``UFFD_USER_MODE_ONLY`` (tried first; write-protect faults in async
  mode are resolved without a message, so kernel-mode writes are tracked
  too).
"""

from __future__ import annotations

import array
import errno as errno_codes
import itertools
import operator
import os
from typing import Any

from pysweep import _ENTRY_WORDS, DEFAULT_BATCH, RangeFlag, SweepResult
from pysweep._spans import BackendError, Spans, check_mapped
from pysweep._syscall import not_built
from pysweep.tracker import Backend, BackendUnavailableError, Guarantees, register_backend

try:
    from pysweep._mainline import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the build
    raise not_built("pysweep._mainline") from exc

__all__ = ["PagemapScanBackend"]

_NAME = "pagemap_scan"
_FEATURES = int(lib.UFFD_FEATURE_WP_ASYNC | lib.UFFD_FEATURE_WP_UNPOPULATED)
_REGION_SIZE: int = ffi.sizeof("struct page_region")
# struct page_region is start, end and categories, all u64.
_REGION_WORDS = _REGION_SIZE // array.array("Q").itemsize
_TOUCHED = int(RangeFlag.TOUCHED)


def _unavailable(errno: int, reason: str) -> BackendUnavailableError:
    return BackendUnavailableError(errno, reason, backend=_NAME)


def _failed(what: str) -> BackendError:
    errno = ffi.errno
    return BackendError(errno, f"{what}: {os.strerror(errno)}", backend=_NAME)


def _open_userfaultfd() -> int:
    """A userfaultfd with asynchronous write-protection, or why there is none."""
    release = os.uname().release
    flags = os.O_CLOEXEC | os.O_NONBLOCK
    fd = lib.pysweep_userfaultfd(flags | lib.UFFD_USER_MODE_ONLY)
    if fd < 0 and ffi.errno == errno_codes.EINVAL:
        # Kernels before 5.11 know no UFFD_USER_MODE_ONLY.
        fd = lib.pysweep_userfaultfd(flags)
    if fd < 0:
        err = ffi.errno
        if err == errno_codes.ENOSYS:
            raise _unavailable(err, f"this kernel ({release}) has no userfaultfd() (CONFIG_USERFAULTFD)")
        if err in (errno_codes.EPERM, errno_codes.EACCES):
            raise _unavailable(
                err,
                "userfaultfd() is not permitted: set /proc/sys/vm/unprivileged_userfaultfd to 1, or run with CAP_SYS_PTRACE",
            )
        raise _unavailable(err, f"userfaultfd() failed: {os.strerror(err)}")
    api = ffi.new("struct uffdio_api *")
    api.api = lib.UFFD_API
    api.features = _FEATURES
    if lib.pysweep_uffdio_api(fd, api) < 0:
        err = ffi.errno
        os.close(fd)
        if err == errno_codes.EINVAL:
            raise _unavailable(
                errno_codes.ENOSYS,
                f"this kernel ({release}) lacks UFFD_FEATURE_WP_ASYNC (Linux 6.7+): UFFDIO_API failed with EINVAL",
            )
        raise _unavailable(err, f"UFFDIO_API failed: {os.strerror(err)}")
    if api.features & _FEATURES != _FEATURES:
        os.close(fd)
        raise _unavailable(
            errno_codes.ENOSYS, f"this kernel ({release}) lacks UFFD_FEATURE_WP_ASYNC or UFFD_FEATURE_WP_UNPOPULATED"
        )
    return int(fd)


def _append_written(entries: array.array[int], vec: Any, count: int) -> None:
    """Append the first ``count`` regions of ``vec`` to ``entries`` as
    ``TOUCHED`` ranges, joining the ones that meet.

    ``PAGEMAP_SCAN`` does not promise to coalesce: its buffer is flushed as
    the walk goes, so regions that meet may come within one call as well
    as across calls.
    """
    regions = array.array("Q")
    regions.frombytes(ffi.buffer(vec, count * _REGION_SIZE))
    starts, ends = regions[0::_REGION_WORDS], regions[1::_REGION_WORDS]
    meets = bool(entries) and entries[-2] == starts[0]
    if not meets and not any(map(operator.eq, ends, starts[1:])):
        entries.extend(itertools.chain.from_iterable(zip(starts, ends, itertools.repeat(_TOUCHED, count), strict=True)))
        return
    for start, end in zip(starts, ends, strict=True):
        if entries and entries[-2] == start:
            entries[-2] = end
        else:
            entries.extend((start, end, _TOUCHED))


def _probe_scan(pagemap: int) -> None:
    # An empty scan: ENOTTY (no ioctl on pagemap) or EINVAL before 6.7.
    arg = ffi.new("struct pm_scan_arg *")
    arg.size = ffi.sizeof("struct pm_scan_arg")
    if lib.pysweep_pagemap_scan(pagemap, arg) < 0:
        err = ffi.errno
        if err in (errno_codes.ENOTTY, errno_codes.EINVAL):
            raise _unavailable(errno_codes.ENOSYS, f"this kernel ({os.uname().release}) has no PAGEMAP_SCAN ioctl (Linux 6.7+)")
        raise _unavailable(err, f"PAGEMAP_SCAN failed: {os.strerror(err)}")


class PagemapScanBackend(Backend):
    """Userfaultfd asynchronous write-protection read back with ``PAGEMAP_SCAN``.

    The calling process only; see the module documentation for what it
    guarantees.  The tracked ranges are kept here: the kernel knows only
    which VMAs are registered, and a registration does not say whether its
    pages were write-protected by this backend.
    """

    name = _NAME
    guarantees = Guarantees(
        remote=False,
        atomic=True,
        range_clear=True,
        reports_gone=False,
        reports_zaps=False,
        follows_mremap=False,
        reports_new_mappings=False,
        cost="time in proportion to the tracked memory in the window (a page table walk)",
    )

    def __init__(self, pid: int, *, batch: int = DEFAULT_BATCH) -> None:
        super().__init__(pid)
        if pid != os.getpid():
            raise _unavailable(
                errno_codes.EOPNOTSUPP,
                f"pid {pid} is not the calling process ({os.getpid()}): a userfaultfd and PAGEMAP_SCAN "
                "watch only the address space of the process that uses them",
            )
        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch}")
        self._uffd: int | None = _open_userfaultfd()
        try:
            self._pagemap: int | None = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            os.close(self._uffd)
            raise _unavailable(exc.errno or errno_codes.EACCES, f"cannot open /proc/self/pagemap: {exc.strerror}") from exc
        try:
            _probe_scan(self._pagemap)
        except BackendUnavailableError:
            self.close()
            raise
        self._tracked = Spans()
        self._vec = ffi.new("struct page_region[]", batch)
        self._batch = batch

    def _fds(self) -> tuple[int, int]:
        if self._uffd is None or self._pagemap is None:
            raise ValueError("operation on a closed backend")
        return self._uffd, self._pagemap

    def _scan(self, start: int, end: int, *, flags: int, room: int, inverted: int = 0, mask: int) -> tuple[int, int]:
        """One ``PAGEMAP_SCAN`` into the vec; returns ``(count, walk_end)``."""
        arg = ffi.new("struct pm_scan_arg *")
        arg.size = ffi.sizeof("struct pm_scan_arg")
        arg.flags = flags
        arg.start = start
        arg.end = end
        arg.vec = int(ffi.cast("uintptr_t", self._vec))
        arg.vec_len = room
        arg.category_inverted = inverted
        arg.category_mask = mask
        arg.return_mask = mask
        count = lib.pysweep_pagemap_scan(self._fds()[1], arg)
        if count < 0:
            if ffi.errno == errno_codes.EPERM and flags & lib.PM_SCAN_CHECK_WPASYNC:
                raise self._stale(start, end)
            raise _failed(f"PAGEMAP_SCAN of {start:#x}-{end:#x}")
        return count, int(arg.walk_end)

    def _stale(self, start: int, end: int) -> BackendError:
        return BackendError(
            errno_codes.EPERM,
            f"tracked memory in {start:#x}-{end:#x} is no longer registered for write tracking "
            "(mapped over since it was tracked): track it again",
            backend=self.name,
        )

    def _unregistered(self, spans: Spans) -> Spans:
        """The parts of ``spans`` in VMAs without asynchronous write-protection
        (tracked memory that was mapped over since)."""
        found: list[tuple[int, int]] = []
        for start, end in spans:
            cursor = start
            while cursor < end:
                count, walk_end = self._scan(
                    cursor, end, flags=0, room=self._batch, inverted=lib.PAGE_IS_WPALLOWED, mask=lib.PAGE_IS_WPALLOWED
                )
                found.extend((int(r.start), int(r.end)) for r in self._vec[0:count])
                if walk_end <= cursor:
                    raise RuntimeError(f"PAGEMAP_SCAN made no progress at {cursor:#x}")
                cursor = walk_end
        return Spans(found)

    def track(self, start: int, end: int) -> None:
        uffd = self._fds()[0]
        if start >= end:
            return
        check_mapped("self", start, end, backend=self.name)
        window = Spans.of(start, end)
        kept = window & self._tracked
        new = window - (kept - self._unregistered(kept))
        done: list[tuple[int, int]] = []
        try:
            for piece_start, piece_end in new:
                register = ffi.new("struct uffdio_register *")
                register.range.start = piece_start
                register.range.len = piece_end - piece_start
                register.mode = lib.UFFDIO_REGISTER_MODE_WP
                if lib.pysweep_uffdio_register(uffd, register) < 0:
                    raise _failed(f"UFFDIO_REGISTER of {piece_start:#x}-{piece_end:#x}")
                done.append((piece_start, piece_end))
                # Registration alone leaves present pages writable: protect them.
                protect = ffi.new("struct uffdio_writeprotect *")
                protect.range.start = piece_start
                protect.range.len = piece_end - piece_start
                protect.mode = lib.UFFDIO_WRITEPROTECT_MODE_WP
                if lib.pysweep_uffdio_writeprotect(uffd, protect) < 0:
                    raise _failed(f"UFFDIO_WRITEPROTECT of {piece_start:#x}-{piece_end:#x}")
        except BackendError:
            self._unregister(Spans(done))
            raise
        self._tracked = self._tracked | window

    def _unregister(self, spans: Spans) -> None:
        uffd = self._fds()[0]
        for start, end in spans:
            piece = ffi.new("struct uffdio_range *")
            piece.start = start
            piece.len = end - start
            # EINVAL: nothing is mapped there any more; nothing to undo.
            if lib.pysweep_uffdio_unregister(uffd, piece) < 0 and ffi.errno != errno_codes.EINVAL:
                raise _failed(f"UFFDIO_UNREGISTER of {start:#x}-{end:#x}")

    def untrack(self, start: int, end: int) -> None:
        dropped = self._tracked.clip(start, end)
        self._unregister(dropped)
        self._tracked = self._tracked - dropped

    def sweep(self, start: int, end: int, *, clear: bool = True, max_ranges: int | None = None) -> SweepResult:
        self._fds()
        flags = lib.PM_SCAN_CHECK_WPASYNC | (lib.PM_SCAN_WP_MATCHING if clear else 0)
        entries: array.array[int] = array.array("Q")
        tracked = self._tracked.clip(start, end)
        if clear:
            # A scan that fails on an unregistered VMA has already protected
            # what it passed without reporting it: fail before clearing.
            stale = self._unregistered(tracked)
            if stale:
                raise self._stale(*stale.items[0])
        pieces = tracked.items
        for index, (piece_start, piece_end) in enumerate(pieces):
            cursor = piece_start
            while cursor < piece_end:
                room = self._batch if max_ranges is None else min(self._batch, max_ranges - len(entries) // _ENTRY_WORDS)
                count, walk_end = self._scan(cursor, piece_end, flags=flags, room=room, mask=lib.PAGE_IS_WRITTEN)
                if count:
                    _append_written(entries, self._vec, count)
                if max_ranges is not None and len(entries) // _ENTRY_WORDS >= max_ranges:
                    # PAGEMAP_SCAN stops at the first page it had no room
                    # for, and touches nothing from there on.  When the
                    # room ran out with the piece, the first range left out
                    # (if any) lies in a later piece.
                    if walk_end < piece_end:
                        return SweepResult._from_entries(entries, walk_end)
                    return SweepResult._from_entries(entries, self._first_written(pieces[index + 1 :], end))
                if not cursor < walk_end <= piece_end:
                    raise RuntimeError(f"PAGEMAP_SCAN stopped at {walk_end:#x}, outside ({cursor:#x}, {piece_end:#x}]")
                cursor = walk_end
        return SweepResult._from_entries(entries, end)

    def _first_written(self, pieces: tuple[tuple[int, int], ...], end: int) -> int:
        # The start of the first written page in ``pieces``, else ``end``;
        # a test-only scan with room for one region.
        for piece_start, piece_end in pieces:
            count, _ = self._scan(piece_start, piece_end, flags=lib.PM_SCAN_CHECK_WPASYNC, room=1, mask=lib.PAGE_IS_WRITTEN)
            if count:
                return int(self._vec[0].start)
        return end

    def close(self) -> None:
        # Closing the userfaultfd unregisters everything it registered.
        uffd, self._uffd = self._uffd, None
        pagemap, self._pagemap = self._pagemap, None
        for fd in (uffd, pagemap):
            if fd is not None:
                os.close(fd)
        self._tracked = Spans()


register_backend(PagemapScanBackend.name, PagemapScanBackend)
