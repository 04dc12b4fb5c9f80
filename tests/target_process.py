"""A real process to point trackers at, doing memory operations on command.

:class:`TargetProcess` forks a child that serves requests over a pipe:
``mmap``, ``munmap``, ``mprotect``, ``mremap``, ``madvise``, stores, and
``fork`` (a grandchild that stores into its copy and exits).  Each request
returns 0 or the errno of the failed call.  For backends that can only
watch the calling process, the child also hosts a :class:`pysweep.Tracker`
of its own (``local_tracker``) and runs its operations on request.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as errno_codes
import mmap
import os
import signal
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, Pipe
from typing import Any

import pysweep
from libc import MAP_FAILED, libc

PAGE_SIZE = mmap.PAGESIZE
MAP_FIXED = 0x10
MREMAP_MAYMOVE = 1
MREMAP_FIXED = 2
MREMAP_DONTUNMAP = 4
MADV = {"dontneed": 4, "free": 8}


def _errno_of(result: int) -> int:
    return 0 if result == 0 else ctypes.get_errno()


def _mmap(start: int, length: int, prot: int, shared: bool) -> int:
    flags = MAP_FIXED | mmap.MAP_ANONYMOUS | (mmap.MAP_SHARED if shared else mmap.MAP_PRIVATE)
    address = libc.mmap(start, length, prot, flags, -1, 0)
    return ctypes.get_errno() if address == MAP_FAILED else 0


def _mremap(old: int, old_length: int, new_length: int, new: int, dontunmap: bool) -> int:
    flags = MREMAP_MAYMOVE | MREMAP_FIXED | (MREMAP_DONTUNMAP if dontunmap else 0)
    address = libc.mremap(old, old_length, new_length, flags, new)
    return ctypes.get_errno() if address == MAP_FAILED else 0


def _store(start: int, length: int, value: int) -> int:
    ctypes.memset(start, value, length)
    return 0


def _fork_and_store(start: int, length: int, value: int) -> int:
    # The grandchild stores into its own view of the memory and exits.
    pid = os.fork()
    if pid == 0:
        try:
            if length:
                ctypes.memset(start, value, length)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return 0 if os.waitstatus_to_exitcode(status) == 0 else errno_codes.ECHILD


class _Server:
    """The child's side: one request at a time, until the pipe closes."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.tracker: pysweep.Tracker | None = None

    def local_tracker(self, backend: str) -> str:
        self.tracker = pysweep.Tracker(None, backend=backend)
        return self.tracker.name

    def tracker_call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        assert self.tracker is not None
        return getattr(self.tracker, method)(*args, **kwargs)

    def serve(self) -> None:
        handlers: dict[str, Callable[..., Any]] = {
            "mmap": _mmap,
            "munmap": lambda start, length: _errno_of(libc.munmap(start, length)),
            "mprotect": lambda start, length, prot: _errno_of(libc.mprotect(start, length, prot)),
            "madvise": lambda start, length, advice: _errno_of(libc.madvise(start, length, MADV[advice])),
            "mremap": _mremap,
            "store": _store,
            "fork": _fork_and_store,
            "local_tracker": self.local_tracker,
            "tracker": self.tracker_call,
        }
        while True:
            try:
                op, args, kwargs = self.conn.recv()
            except EOFError:
                return
            try:
                self.conn.send(("ok", handlers[op](*args, **kwargs)))
            except OSError as exc:
                self.conn.send(("oserror", exc))
            except Exception:  # noqa: BLE001 - everything goes back to the parent
                self.conn.send(("error", traceback.format_exc()))


class TargetProcess:
    """A forked child doing memory operations on command; a context manager."""

    def __init__(self) -> None:
        parent, child = Pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - runs in the child
            status = 0
            try:
                parent.close()
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _Server(child).serve()
            except BaseException:  # noqa: BLE001
                status = 1
            finally:
                os._exit(status)
        child.close()
        self._conn = parent

    def request(self, op: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``op`` in the child; returns its result, re-raises its OSError."""
        self._conn.send((op, args, kwargs))
        kind, value = self._conn.recv()
        if kind == "ok":
            return value
        if kind == "oserror":
            raise value
        raise RuntimeError(f"target process failed in {op}:\n{value}")

    def mmap(self, start: int, length: int, prot: int, *, shared: bool = False) -> int:
        return int(self.request("mmap", start, length, prot, shared))

    def munmap(self, start: int, length: int) -> int:
        return int(self.request("munmap", start, length))

    def mprotect(self, start: int, length: int, prot: int) -> int:
        return int(self.request("mprotect", start, length, prot))

    def madvise(self, start: int, length: int, advice: str) -> int:
        return int(self.request("madvise", start, length, advice))

    def mremap(self, old: int, old_length: int, new_length: int, new: int, *, dontunmap: bool = False) -> int:
        return int(self.request("mremap", old, old_length, new_length, new, dontunmap))

    def store(self, start: int, length: int, value: int = 0x5A) -> int:
        return int(self.request("store", start, length, value))

    def fork(self, start: int = 0, length: int = 0, value: int = 0xA5) -> int:
        return int(self.request("fork", start, length, value))

    def maps(self, start: int, end: int) -> dict[int, tuple[int, bool]]:
        """Mapped pages of ``[start, end)`` per /proc/PID/maps: protection and sharing."""
        pages: dict[int, tuple[int, bool]] = {}
        with open(f"/proc/{self.pid}/maps") as maps:
            for line in maps:
                span, perms = line.split()[:2]
                low, high = (int(part, 16) for part in span.split("-"))
                if high <= start or low >= end:
                    continue
                prot = (mmap.PROT_READ if perms[0] == "r" else 0) | (mmap.PROT_WRITE if perms[1] == "w" else 0)
                for page in range(max(low, start), min(high, end), PAGE_SIZE):
                    pages[page] = (prot, perms[3] == "s")
        return pages

    def tracked_pages(self, start: int, end: int) -> set[int]:
        """Pages of ``[start, end)`` whose VMA shows ``tt`` in /proc/PID/smaps."""
        tracked: set[int] = set()
        span: tuple[int, int] | None = None
        with open(f"/proc/{self.pid}/smaps") as smaps:
            for line in smaps:
                head = line.split()[0] if line.strip() else ""
                if "-" in head and not head.endswith(":"):
                    low, high = (int(part, 16) for part in head.split("-"))
                    span = (low, high) if high > start and low < end else None
                elif head == "VmFlags:" and span is not None and "tt" in line.split()[1:]:
                    tracked.update(range(max(span[0], start), min(span[1], end), PAGE_SIZE))
        return tracked

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    def __enter__(self) -> TargetProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class LocalTracker:
    """A :class:`pysweep.Tracker` living in the target process itself.

    For backends without ``Guarantees.remote``: the same methods, run in
    the child.
    """

    def __init__(self, target: TargetProcess, backend: str) -> None:
        self._target = target
        self.name = str(target.request("local_tracker", backend))

    def track(self, start: int, end: int) -> None:
        self._target.request("tracker", "track", start, end)

    def untrack(self, start: int, end: int) -> None:
        self._target.request("tracker", "untrack", start, end)

    def sweep(self, start: int, end: int, *, clear: bool = True, max_ranges: int | None = None) -> pysweep.SweepResult:
        result = self._target.request("tracker", "sweep", start, end, clear=clear, max_ranges=max_ranges)
        assert isinstance(result, pysweep.SweepResult)
        return result

    def close(self) -> None:
        with contextlib.suppress(OSError, EOFError, RuntimeError):
            self._target.request("tracker", "close")
