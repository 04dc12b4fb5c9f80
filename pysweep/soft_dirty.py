"""The ``soft_dirty`` backend: ``/proc/PID/clear_refs`` and bit 55 of
``/proc/PID/pagemap``, for any process the caller may ptrace.

Writing ``4`` to ``clear_refs`` clears the soft-dirty bit of every page
table entry and VMA of the target; a later write sets it again, and
``pagemap`` shows it as bit 55 of each page's 64-bit entry.  The kernel
knows nothing of tracked ranges, so this backend keeps them, and emulates
per-range marks with a set of *pending* pages: written, not yet reported by
a clearing sweep.  Before each clear it reads the soft-dirty bits of every
tracked range into the pending set, so that the clear loses no mark
(apart from the writes that race with it, below).

Guarantees and costs:

- Not atomic: reading the bits and clearing them are two steps.  A write
  that lands between them is lost, so the target must be stopped across a
  clearing sweep (and across ``track``, which clears too).
- Every clear applies to the whole address space: any other soft-dirty user
  of the target (CRIU, another tool) and this backend clear each other's
  marks.  Instances of this backend in one process cooperate.
- ``track`` and a clearing sweep read the pagemap entries of all tracked
  memory, 8 bytes per page: cost grows with the memory tracked, not with
  what was written.  A test-only sweep reads the window only.
- A new VMA is soft-dirty in full (``VM_SOFTDIRTY``) until the next clear:
  memory mapped into a tracked range is reported touched in full, unmapped
  pages included.  A new mapping that merges with a tracked VMA makes the
  merged VMA soft-dirty in full.
- ``mremap(2)`` carries the soft-dirty bits of moved pages to the new
  address, but the backend does not know the new address is tracked, and
  tracking it clears the whole address space: moved ranges are not
  followed.  No ``GONE`` either: unmapped pages have no entry and are not
  reported.
- The mark lives in the page table entry (or swap entry): a page whose
  entry is dropped (``MADV_DONTNEED``, reclaim of a file page after
  writeback) loses it, so zaps are not reported and such writes can be
  missed.
- Needs a kernel built with ``CONFIG_MEM_SOFT_DIRTY``; without it
  ``clear_refs`` still accepts ``4`` but bit 55 is never set.  The
  constructor checks this once per process on a page of its own.
"""

from __future__ import annotations

import ctypes
import errno as errno_codes
import mmap
import os
import sys
import threading
import weakref

from pysweep import PAGE_SIZE, SweepResult
from pysweep._spans import BackendError, Spans, check_mapped, limited_result, pagemap_runs
from pysweep.tracker import Backend, BackendUnavailableError, Guarantees, register_backend

__all__ = ["SoftDirtyBackend", "soft_dirty_works"]

_NAME = "soft_dirty"
# Bit 55 is the top bit of byte 6 of a little-endian entry (byte 1 if big).
_SOFT_DIRTY_BYTE = 6 if sys.byteorder == "little" else 1
_HIGH_BIT = bytes(0 if value < 0x80 else 1 for value in range(256))

_self_test_lock = threading.Lock()
_self_test: tuple[int, str] | None = None
_self_tested = False

# Every live backend, so that a clear of one process's soft-dirty bits first
# saves the marks of every backend watching that process.
_live: weakref.WeakSet[SoftDirtyBackend] = weakref.WeakSet()
_live_lock = threading.RLock()


def _unavailable(errno: int, reason: str) -> BackendUnavailableError:
    return BackendUnavailableError(errno, reason, backend=_NAME)


def _dirty(pagemap: int, spans: Spans) -> Spans:
    """The pages of ``spans`` whose pagemap entry has the soft-dirty bit."""
    return pagemap_runs(pagemap, spans, _SOFT_DIRTY_BYTE, _HIGH_BIT)


def _run_self_test() -> tuple[int, str] | None:
    release = os.uname().release
    try:
        clear_refs = os.open("/proc/self/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        return exc.errno or errno_codes.EACCES, f"cannot open /proc/self/clear_refs: {exc.strerror}"
    try:
        pagemap = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        os.close(clear_refs)
        return exc.errno or errno_codes.EACCES, f"cannot open /proc/self/pagemap: {exc.strerror}"
    page = mmap.mmap(-1, PAGE_SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        anchor = ctypes.c_char.from_buffer(page)
        address = ctypes.addressof(anchor)
        del anchor
        here = Spans.of(address, address + PAGE_SIZE)
        page[0] = 1
        _clear_refs(os.getpid(), clear_refs)
        if _dirty(pagemap, here):
            return errno_codes.ENOSYS, f"clear_refs on this kernel ({release}) does not clear the soft-dirty bit"
        page[0] = 2
        if not _dirty(pagemap, here):
            return (
                errno_codes.ENOSYS,
                f"this kernel ({release}): clear_refs accepts 4 but never sets the soft-dirty bit "
                "(kernel built without CONFIG_MEM_SOFT_DIRTY?)",
            )
        return None
    except OSError as exc:
        return exc.errno or errno_codes.EIO, f"the soft-dirty self-test failed: {exc.strerror}"
    finally:
        page.close()
        os.close(pagemap)
        os.close(clear_refs)


def soft_dirty_works() -> tuple[int, str] | None:
    """``None`` if soft-dirty tracking works on this kernel, else ``(errno, why not)``.

    Checked once per process: a fresh page of the caller is written, its
    bit cleared with ``clear_refs`` and written again.
    """
    global _self_test, _self_tested
    with _self_test_lock:
        if not _self_tested:
            _self_test = _run_self_test()
            _self_tested = True
        return _self_test


def _clear_refs(pid: int, clear_refs: int) -> None:
    """Clear the soft-dirty bits of ``pid``, after every backend watching it saved its marks."""
    with _live_lock:
        for backend in list(_live):
            if backend.pid == pid:
                backend._save_marks()
        os.write(clear_refs, b"4")


class SoftDirtyBackend(Backend):
    """Soft-dirty bits, with per-range marks emulated in user space.

    Any process the caller may ptrace; exact only while the target is
    stopped across clearing sweeps and ``track``.  See the module
    documentation for the other limits: whole address space clears, cost in
    proportion to the tracked memory, new mappings reported in full, no
    ``GONE``, moved ranges not followed.
    """

    name = _NAME
    guarantees = Guarantees(
        remote=True,
        atomic=False,
        range_clear=False,
        reports_gone=False,
        reports_zaps=False,
        follows_mremap=False,
        reports_new_mappings=True,
        cost="time in proportion to all tracked memory for track and clearing sweeps (8 bytes of pagemap per page)",
    )

    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        failed = soft_dirty_works()
        if failed is not None:
            raise _unavailable(*failed)
        try:
            self._pagemap: int | None = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise self._refused(exc, "pagemap") from exc
        try:
            self._clear_refs: int | None = os.open(f"/proc/{pid}/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            os.close(self._pagemap)
            raise self._refused(exc, "clear_refs") from exc
        self._tracked = Spans()
        self._pending = Spans()
        with _live_lock:
            _live.add(self)

    def _refused(self, exc: OSError, what: str) -> BackendUnavailableError:
        err = exc.errno or errno_codes.EACCES
        if err == errno_codes.ENOENT:
            return _unavailable(errno_codes.ESRCH, f"no process {self.pid}")
        return _unavailable(err, f"cannot open /proc/{self.pid}/{what}: {exc.strerror}")

    def _failed(self, exc: OSError, doing: str, what: str) -> BackendError:
        return BackendError(
            exc.errno or errno_codes.EIO,
            f"{doing} /proc/{self.pid}/{what}: {exc.strerror}",
            backend=self.name,
            target=f"pid {self.pid}",
        )

    def _fds(self) -> tuple[int, int]:
        if self._pagemap is None or self._clear_refs is None:
            raise ValueError("operation on a closed backend")
        return self._pagemap, self._clear_refs

    def _read(self, spans: Spans) -> Spans:
        try:
            return _dirty(self._fds()[0], spans)
        except OSError as exc:
            raise self._failed(exc, "reading", "pagemap") from exc

    def _save_marks(self) -> None:
        # Called before any clear of this process: carry the bits over.
        if self._pagemap is not None:
            self._pending = self._pending | self._read(self._tracked)

    def _clear(self) -> None:
        try:
            _clear_refs(self.pid, self._fds()[1])
        except OSError as exc:
            if isinstance(exc, BackendError):
                raise
            raise self._failed(exc, "writing", "clear_refs") from exc

    def track(self, start: int, end: int) -> None:
        self._fds()
        if start >= end:
            return
        try:
            check_mapped(self.pid, start, end, backend=self.name)
        except OSError as exc:
            if isinstance(exc, BackendError):
                raise
            raise self._failed(exc, "reading", "maps") from exc
        # The clear saves the marks of the tracked ranges first; the new
        # part starts clean.
        self._clear()
        self._tracked = self._tracked | Spans.of(start, end)

    def untrack(self, start: int, end: int) -> None:
        window = Spans.of(start, end)
        self._tracked = self._tracked - window
        self._pending = self._pending - window

    def sweep(self, start: int, end: int, *, clear: bool = True, max_ranges: int | None = None) -> SweepResult:
        self._fds()
        if not clear:
            found = self._pending.clip(start, end) | self._read(self._tracked.clip(start, end))
            return limited_result(found, start, end, max_ranges)[0]
        if self._tracked.clip(start, end):
            # Only a window with tracked memory is worth a whole-mm clear.
            self._clear()
        result, covered = limited_result(self._pending.clip(start, end), start, end, max_ranges)
        self._pending = self._pending - covered
        return result

    def close(self) -> None:
        with _live_lock:
            _live.discard(self)
        pagemap, self._pagemap = self._pagemap, None
        clear_refs, self._clear_refs = self._clear_refs, None
        for fd in (pagemap, clear_refs):
            if fd is not None:
                os.close(fd)


register_backend(SoftDirtyBackend.name, SoftDirtyBackend)
