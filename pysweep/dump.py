"""Incremental pre-copy dumps of a running process's memory.

A :class:`Dumper` copies the writable anonymous memory of a process, and
the pages of its writable private file mappings that it has its own copy
of, in rounds, as CRIU's pre-dumps and pre-copy live migration do.
Round 0 copies everything tracked; each later round is a clearing sweep, and
copies only what it reports.  When a round copies less than
``converge_bytes`` (or after ``max_rounds``), the dumper stops the process
with SIGSTOP, sent through a pidfd opened when the dumper is made (so a
pid reused after the target exits is never signalled), waits until
every thread has stopped, runs the last round, and resumes it:
the freeze lasts one sweep and one small copy.  On a backend whose
clearing sweep is not atomic (``soft_dirty`` reads the marks and clears
them in two steps), the process is also stopped across each earlier
round's sweep, though not across its copy.  On a backend whose marks live
in the page table entries (``soft_dirty``, which does not report zaps),
the last round copies shared mappings whole: reclaim drops the entries of
shared memory, and with them the marks of pages written meanwhile.

The image is a directory with one subdirectory per round, ``round-NNN``,
each holding ``manifest.json`` and ``pages.bin`` (the copied ranges, one
after another), like CRIU's parent images, and ``merged``, the same
format with the final content of every page.  Pages go to disk as they
are copied, a chunk (CHUNK bytes) at a time: each round's ``pages.bin`` is
appended to, each page once a round, and an index says which round holds
each page's latest copy; ``merged`` is written from the rounds' files at
the end, in the kernel (``copy_file_range``) where it can.  The dumper
keeps span lists and that index in memory, about 100 bytes per page of
the image (26 MiB for 1 GiB), never the pages themselves.  The frozen
round keeps its copies in memory and writes them once the process runs
again (they are what one round wrote, little by then), unless they pass
DEFER_MAX; manifests are written when a round ends, the merged one last.
:func:`verify` compares a merged image with a (stopped) process's memory
byte for byte, a chunk at a time.

Memory is read with ``process_vm_readv(2)``, which needs the same
permission as ptrace-attaching to the process.
"""

from __future__ import annotations

import array
import bisect
import contextlib
import errno as errno_codes
import functools
import itertools
import json
import os
import select
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import attrs

from pysweep import PAGE_SIZE, RangeFlag, SweepError
from pysweep._native import ffi, lib
from pysweep._spans import Spans, pagemap_runs
from pysweep.maps import Mapping, read_maps, undumpable_reason
from pysweep.tracker import Tracker

__all__ = [
    "Dumper",
    "RoundStats",
    "full_stop_dump",
    "load_image",
    "read_memory",
    "verify",
]

# Bits 56 to 63 of a /proc/PID/pagemap entry are its top byte.
_TOP_BYTE = 7 if sys.byteorder == "little" else 0
_PM_PRESENT, _PM_SWAP, _PM_EXCLUSIVE = 1 << 7, 1 << 6, 1 << 0
_PM_FILE = 1 << 5
# 1 for a top byte whose page may have changed without a write fault: not
# present and not swapped (zapped: it reads as zeros, or as the file, now),
# or present but not mapped exclusively (the zero page after a read, or a
# page shared with another process), or a file's page (a private file
# mapping's copy zapped and read back).
_UNBACKED = bytes(
    1
    if (not top & _PM_PRESENT and not top & _PM_SWAP) or (top & _PM_PRESENT and (not top & _PM_EXCLUSIVE or top & _PM_FILE))
    else 0
    for top in range(256)
)
_ZERO_PAGE = bytes(PAGE_SIZE)

# The image's format; bumped on incompatible changes.
FORMAT = 1
# Copies are made in chunks of at most this many bytes.
CHUNK = 1 << 22
# The most a frozen round holds in memory before it writes to disk.
DEFER_MAX = 16 * CHUNK
_READ_RANGES = int(lib.PYSWEEP_READ_RANGES)


def read_memory(pid: int, start: int, length: int) -> bytes:
    """``length`` bytes of ``pid``'s memory at ``start`` (``process_vm_readv``)."""
    buf = bytearray(length)
    done = 0
    while done < length:
        n = lib.pysweep_read_memory(pid, ffi.from_buffer(buf) + done, start + done, length - done)
        if n < 0:
            err = ffi.errno
            raise OSError(err, f"process_vm_readv of pid {pid} at {start + done:#x}: {os.strerror(err)}")
        if n == 0:
            raise OSError(errno_codes.EFAULT, f"process_vm_readv of pid {pid} at {start + done:#x}: short read")
        done += n
    return bytes(buf)


def read_spans(pid: int, spans: Iterable[tuple[int, int]]) -> Iterator[tuple[int, bytes]]:
    """The readable parts of page-aligned ``spans`` of ``pid``'s memory, as
    ``(address, data)`` in order, skipping the pages that cannot be read
    (unmapped meanwhile).

    Up to 1,024 spans and CHUNK bytes go into each ``process_vm_readv``.
    It stops at the first page it cannot read and says how much it read
    before it; that page is skipped and reading goes on after it.  An
    exited process raises :class:`ProcessLookupError`; a refusal
    (``EPERM``) raises :class:`PermissionError`.
    """
    pieces = deque((lo, min(end, lo + CHUNK)) for start, end in spans for lo in range(start, end, CHUNK))
    readable: list[tuple[int, int]] | None = None
    while pieces:
        batch: list[tuple[int, int]] = []
        total = 0
        while pieces and len(batch) < _READ_RANGES and total + pieces[0][1] - pieces[0][0] <= CHUNK:
            lo, hi = pieces.popleft()
            batch.append((lo, hi))
            total += hi - lo
        buf = bytearray(total)
        ranges = array.array("L", itertools.chain.from_iterable((lo, hi - lo) for lo, hi in batch))
        n = lib.pysweep_read_ranges(pid, ffi.from_buffer(buf), total, ffi.from_buffer("unsigned long[]", ranges), len(batch))
        if n < 0:
            err = ffi.errno
            if err == errno_codes.ESRCH:
                raise ProcessLookupError(err, f"process_vm_readv of pid {pid}: {os.strerror(err)}")
            if err != errno_codes.EFAULT:
                raise OSError(err, f"process_vm_readv of pid {pid}: {os.strerror(err)}")
            n = 0
        view = memoryview(buf)
        offset = 0
        for index, (lo, hi) in enumerate(batch):
            if offset + hi - lo <= n:
                yield lo, bytes(view[offset : offset + hi - lo])
                offset += hi - lo
                continue
            # The read stopped in this span: keep what came, and go on after
            # the page it stopped at, or, outside every readable mapping,
            # at the next one (the maps are read once, at the first stop).
            got = (n - offset) // PAGE_SIZE * PAGE_SIZE
            if got:
                yield lo, bytes(view[offset : offset + got])
            if readable is None:
                readable = [(m.start, m.end) for m in read_maps(pid) if "r" in m.perms]
            resume = _after_unreadable(readable, lo + got)
            rest = [(resume, hi)] if resume < hi else []
            pieces.extendleft(reversed(rest + batch[index + 1 :]))
            break


def _after_unreadable(readable: list[tuple[int, int]], addr: int) -> int:
    """Where to read on after the unreadable page at ``addr``: the next
    page inside a readable mapping, else the start of the next readable
    mapping (``readable`` is sorted)."""
    index = bisect.bisect_right(readable, (addr, 1 << 64)) - 1
    if index >= 0 and readable[index][0] <= addr < readable[index][1]:
        return addr + PAGE_SIZE
    return readable[index + 1][0] if index + 1 < len(readable) else 1 << 64


def _unbacked(pid: int, spans: Spans) -> Spans:
    """The pages of ``spans`` (private memory of ``pid``) that
    ``/proc/PID/pagemap`` shows zapped, or mapped to a page the process
    does not own alone: what a zap changed without a write fault."""
    return _pagemap_runs(pid, spans, _UNBACKED)


# 1 for a top byte whose page the process has a copy of its own: present
# and not a file page, or swapped out.
_OWN = bytes(1 if (top & _PM_PRESENT and not top & _PM_FILE) or top & _PM_SWAP else 0 for top in range(256))


def _pagemap_runs(pid: int, spans: Spans, table: bytes) -> Spans:
    """The pages of ``spans`` whose ``/proc/PID/pagemap`` entry's top byte
    ``table`` maps to 1."""
    if not spans:
        return Spans()
    with open(f"/proc/{pid}/pagemap", "rb", buffering=0) as pagemap:
        return pagemap_runs(pagemap.fileno(), spans, _TOP_BYTE, table)


def own_pages(pid: int, spans: Spans) -> Spans:
    """The pages of ``spans`` (private memory of ``pid``) that the process
    has a copy of its own: anonymous, or copied from a file on a write."""
    return _pagemap_runs(pid, spans, _OWN)


def _overlapping(maps: list[Mapping], spans: Spans) -> set[int]:
    """The indexes of the mappings in ``maps`` (sorted, disjoint) that
    ``spans`` overlap: one lookup per span, not per page."""
    starts = [m.start for m in maps]
    found = set()
    for start, end in spans:
        index = max(bisect.bisect_right(starts, start) - 1, 0)
        while index < len(maps) and maps[index].start < end:
            if maps[index].end > start:
                found.add(index)
            index += 1
    return found


def _file_record(m: Mapping) -> dict[str, str]:
    """A private file mapping as the manifest lists it: its pages not in the
    image are the file's, from ``offset`` on."""
    return {"start": hex(m.start), "end": hex(m.end), "path": m.path, "offset": hex(m.offset)}


@attrs.frozen
class RoundStats:
    """What one round did."""

    round: int
    pages: int
    bytes: int
    sweep_s: float
    copy_s: float
    frozen: bool


class _ImageWriter:
    """One image directory written as its pages come: ``pages.bin``
    appended to, one range per run, and ``manifest.json`` at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Opened at the first write: not while a frozen round runs.
        self._opened: BinaryIO | None = None
        self._ranges: list[list[int]] = []
        self._offset = 0

    @property
    def _file(self) -> BinaryIO:
        if self._opened is None:
            self.path.mkdir(parents=True, exist_ok=True)
            # A chunk of buffer: pages come one at a time in later rounds.
            self._opened = open(self.path / "pages.bin", "wb", buffering=CHUNK)  # noqa: SIM115 (closed in close())
        return self._opened

    def abandon(self) -> None:
        """Close the file without a manifest (the dump failed)."""
        if self._opened is not None:
            self._opened.close()

    def add(self, start: int, data: bytes | memoryview) -> int:
        """Append the pages of ``data``, from ``start`` on; where in
        ``pages.bin`` they go."""
        offset = self._offset
        self._file.write(data)
        self._note(start, start + len(data))
        return offset

    def _note(self, start: int, end: int) -> None:
        last = self._ranges[-1] if self._ranges else None
        if last is not None and last[1] == start:
            last[1] = end
        else:
            self._ranges.append([start, end, self._offset])
        self._offset += end - start

    def flush(self) -> None:
        self._file.flush()

    def copy_from(self, source: BinaryIO, offset: int, start: int, end: int) -> None:
        """Append the pages of ``[start, end)`` found at ``offset`` of
        ``source``, in the kernel where it can (``copy_file_range``)."""
        done = 0
        while done < end - start:
            try:
                n = os.copy_file_range(source.fileno(), self._file.fileno(), end - start - done, offset + done)
            except OSError:
                n = 0
            if n <= 0:
                # Not across these file systems: through memory, a chunk at a time.
                n = self._file.write(os.pread(source.fileno(), min(CHUNK, end - start - done), offset + done))
                self._file.flush()
                if n <= 0:
                    raise OSError(errno_codes.EIO, f"{source.name}: short read at {offset + done}")
            done += n
        self._note(start, end)

    def close(self, manifest: dict[str, object]) -> None:
        self._file.close()
        ranges = [{"start": hex(start), "end": hex(end), "offset": offset} for start, end, offset in self._ranges]
        # No indent: json's C encoder, many times faster on many ranges.
        text = json.dumps({"format": FORMAT, **manifest, "ranges": ranges}) + "\n"
        (self.path / "manifest.json").write_text(text)


def _write_round(path: Path, manifest: dict[str, object], chunks: Iterator[tuple[int, bytes]]) -> None:
    writer = _ImageWriter(path)
    for start, data in chunks:
        writer.add(start, data)
    writer.close(manifest)


class _PageIndex:
    """Where the latest copy of each page of the image is: in which round's
    ``pages.bin``, at which offset.  A later copy of a page replaces the
    older one's place; :meth:`write_merged` writes the merged image from
    the rounds' files once they are complete, as CRIU restores from parent
    images.  It costs about 100 bytes per page held, and an update per page
    copied or dropped, not per page tracked.
    """

    # A page's place: its round in the high bits, its page in the file below.
    _ROUND_SHIFT = 40

    def __init__(self) -> None:
        self._where: dict[int, int] = {}

    def add(self, start: int, end: int, source: int, offset: int) -> None:
        """The pages of ``[start, end)`` are now at ``offset`` of file ``source``."""
        first = (source << self._ROUND_SHIFT) + offset // PAGE_SIZE
        self._where.update(zip(range(start, end, PAGE_SIZE), itertools.count(first)))

    def drop(self, spans: Spans) -> None:
        """Forget the pages in ``spans``."""
        for start, end in spans:
            for addr in range(start, end, PAGE_SIZE):
                self._where.pop(addr, None)

    def runs(self) -> Iterator[tuple[int, int, int, int]]:
        """``(start, end, source, offset)`` of each run of pages that are
        next to each other in memory and in one file, in address order."""
        run: list[int] | None = None
        mask = (1 << self._ROUND_SHIFT) - 1
        for addr, place in sorted(self._where.items()):
            if run is not None and run[1] == addr and run[2] + (addr - run[0]) // PAGE_SIZE == place:
                run[1] = addr + PAGE_SIZE
                continue
            if run is not None:
                yield run[0], run[1], run[2] >> self._ROUND_SHIFT, (run[2] & mask) * PAGE_SIZE
            run = [addr, addr + PAGE_SIZE, place]
        if run is not None:
            yield run[0], run[1], run[2] >> self._ROUND_SHIFT, (run[2] & mask) * PAGE_SIZE

    def write_merged(self, path: Path, sources: list[Path], manifest: dict[str, object]) -> None:
        """Write the merged image to ``path``, its pages taken from
        ``sources`` (complete by now) in address order."""
        writer = _ImageWriter(path)
        files = [open(source, "rb") for source in sources]  # noqa: SIM115 (closed below)
        try:
            writer.flush()
            for start, end, source, offset in self.runs():
                writer.copy_from(files[source], offset, start, end)
        except BaseException:
            writer.abandon()
            raise
        finally:
            for f in files:
                f.close()
        writer.close(manifest)


def load_image(path: Path) -> dict[int, bytes]:
    """The pages of one image directory (a round or ``merged``), by address."""
    manifest = json.loads((path / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a pysweep image of format {FORMAT}")
    data = (path / "pages.bin").read_bytes()
    pages = {}
    for r in manifest["ranges"]:
        start, end, offset = int(r["start"], 16), int(r["end"], 16), r["offset"]
        for addr in range(start, end, PAGE_SIZE):
            pages[addr] = data[offset + addr - start : offset + addr - start + PAGE_SIZE]
    return pages


def _runs(pages: dict[int, bytes]) -> Iterator[tuple[int, bytes]]:
    """Contiguous runs of ``pages``, as (start, data)."""
    start = prev = -1
    parts: list[bytes] = []
    for addr in sorted(pages):
        if addr != prev + PAGE_SIZE and parts:
            yield start, b"".join(parts)
            parts = []
        if not parts:
            start = addr
        parts.append(pages[addr])
        prev = addr
    if parts:
        yield start, b"".join(parts)


def _state(path: str) -> str:
    """The state letter of a /proc stat file (after the command name)."""
    with open(path) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def _running_threads(pid: int) -> list[tuple[str, str]]:
    """``(tid, state)`` of each thread of ``pid`` that is not stopped yet
    and can still run."""
    running = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            state = _state(f"/proc/{pid}/task/{tid}/stat")
        except FileNotFoundError:
            continue  # exited meanwhile
        # A zombie thread (a leader that called pthread_exit()) runs no
        # more code and never stops.
        if state not in ("T", "t", "Z", "X"):
            running.append((tid, state))
    return running


def _wait_stopped(pid: int, pidfd: int, timeout: float = 30.0) -> None:
    """Wait until every thread of ``pid`` (named by ``pidfd``) is stopped (state T).

    SIGSTOP stops the threads one by one as each notices the signal; the
    group leader can show T while another thread still runs and writes.
    A process that exited takes the signal and never stops: its pidfd
    turns readable, and that is an error at once.
    """
    deadline = time.monotonic() + timeout
    exited = select.poll()
    exited.register(pidfd, select.POLLIN)
    while True:
        if exited.poll(0):
            raise ProcessLookupError(errno_codes.ESRCH, f"pid {pid} exited")
        running = _running_threads(pid)
        if not running:
            return
        now = time.monotonic()
        if now > deadline:
            tid, state = running[0]
            raise TimeoutError(f"pid {pid} did not stop within {timeout} s (thread {tid} in state {state})")
        # Threads stop within a scheduling round or two: yield the CPU at
        # first rather than sleep, which costs a millisecond or more.
        if now < deadline - timeout + 0.005:
            os.sched_yield()
        else:
            time.sleep(0.001)


@attrs.define
class _Freeze:
    """How long a process was stopped, from SIGSTOP to SIGCONT."""

    seconds: float = 0.0


@contextlib.contextmanager
def _stopped(pid: int, *, pidfd: int | None = None, resume: bool = True) -> Iterator[_Freeze]:
    """Stop every thread of ``pid`` for the block, then resume it unless ``resume`` is false.

    The signals go through ``pidfd``, or through one opened here for the
    block, never to the bare pid, which may name another process once the
    target has exited.
    """
    freeze = _Freeze()
    own = pidfd is None
    fd = os.pidfd_open(pid) if pidfd is None else pidfd
    start = time.monotonic()
    try:
        signal.pidfd_send_signal(fd, signal.SIGSTOP)
        _wait_stopped(pid, fd)
        yield freeze
    finally:
        try:
            if resume:
                signal.pidfd_send_signal(fd, signal.SIGCONT)
        finally:
            freeze.seconds = time.monotonic() - start
            if own:
                os.close(fd)


class Dumper:
    """Dump ``pid``'s writable anonymous memory, and its own pages of its
    writable private file mappings, into ``out`` in rounds.

    ``backend`` is a :class:`~pysweep.tracker.Tracker` backend name.
    ``progress`` is called with each round's :class:`RoundStats`, in order;
    for the last round before the freeze and the frozen one, once the
    process runs again.
    """

    def __init__(
        self,
        pid: int,
        out: Path,
        *,
        backend: str = "auto",
        max_rounds: int = 8,
        converge_bytes: int = 1 << 20,
        progress: Callable[[RoundStats], None] | None = None,
    ) -> None:
        if max_rounds < 1:
            raise ValueError("max_rounds must be at least 1")
        self.pid = pid
        self.out = Path(out)
        self.max_rounds = max_rounds
        self.converge_bytes = converge_bytes
        self.progress = progress
        # Names the target for every stop and resume, even after it exits.
        self._pidfd = os.pidfd_open(pid)
        try:
            self.tracker = Tracker(pid, backend=backend)
        except BaseException:
            os.close(self._pidfd)
            raise
        # Where each page's latest copy is, in the rounds' pages.bin files
        # (``_sources``, by round), from which the merged image is written.
        self._index = _PageIndex()
        self._sources: list[Path] = []
        # The addresses of the image's pages, as spans, so that the frozen
        # round compares the image with the mappings range by range; the
        # spans copied since it was last brought up to date wait in a list.
        self._held = Spans()
        self._held_new: list[tuple[int, int]] = []
        # Of those, the pages whose copy is all zeros, kept the same way, on
        # a backend that misses zaps (a zapped page reads as zeros).
        self._zero = Spans()
        self._zero_new: list[tuple[int, int]] = []
        self.tracked: list[tuple[int, int]] = []
        self.skipped: list[dict[str, str]] = []
        # Private file mappings dumped: the image has the pages the process
        # has its own copy of, the file the rest.  The spans of those still
        # mapped as they were.
        self.file_private: list[dict[str, str]] = []
        self._file_spans = Spans()
        self.rounds: list[RoundStats] = []
        # How long the process was stopped, from SIGSTOP to SIGCONT.
        self.freeze_s = 0.0
        # How long the process was stopped for the clearing sweeps of the
        # rounds before the last, on a backend whose sweep is not atomic.
        self.sweep_stops_s = 0.0
        # Rounds whose manifests and progress lines wait: the last round
        # before the freeze, and the frozen one, are told once the process
        # runs again, so that neither lengthens the freeze or the window
        # before it (a line on a serial console can take milliseconds).
        self._pending: list[tuple[_ImageWriter, dict[str, object], RoundStats]] = []
        # While the process is frozen, what would go to disk waits here, in
        # order, until it runs again: one round's writes, small by then.
        self._deferred: list[Callable[[], None]] | None = None
        self._deferred_bytes = 0
        # The round being written, closed without a manifest if a round fails.
        self._writer: _ImageWriter | None = None
        # What this round copied, to count each page once.
        self._round_spans: list[tuple[int, int]] = []

    def _opt_in(self) -> None:
        for m in read_maps(self.pid):
            reason = undumpable_reason(m)
            if reason is None:
                try:
                    self.tracker.track(m.start, m.end)
                except SweepError as exc:
                    reason = f"cannot be tracked: {exc.strerror}"
            if reason is None:
                self.tracked.append((m.start, m.end))
                if m.file_private:
                    self.file_private.append(_file_record(m))
            else:
                self.skipped.append({"start": hex(m.start), "end": hex(m.end), "path": m.path, "reason": reason})
        self._file_spans = Spans((int(r["start"], 16), int(r["end"], 16)) for r in self.file_private)

    def _copy_spans(self, spans: Iterable[tuple[int, int]], copied: _ImageWriter) -> None:
        """Copy ``spans`` into the image and into the round's ``copied``,
        many to a system call and a chunk at a time; pages unmapped
        meanwhile are left out (the sweep reports them gone, or the frozen
        round finds them unmapped), and a copy the image held of such a
        page is dropped, for it is no longer what the process has."""
        source = len(self._sources) - 1
        # Which pages are zeros matters only to a backend that misses zaps.
        find_zeros = not self.tracker.guarantees.reports_zaps
        want = list(spans)
        read: list[tuple[int, int]] = []
        for at, data in read_spans(self.pid, want):
            read.append((at, at + len(data)))
            self._round_spans.append((at, at + len(data)))
            self._held_new.append((at, at + len(data)))
            if self._deferred is None:
                self._add(copied, source, at, data)
            else:
                self._deferred.append(functools.partial(self._add, copied, source, at, data))
                self._deferred_bytes += len(data)
                if self._deferred_bytes > DEFER_MAX:
                    # A frozen round that copies this much (shared mappings
                    # whole, say) is long anyway: write from now on, in
                    # order, so that memory stays bounded.
                    self._write_deferred()
            if not find_zeros:
                continue
            zero = self._zero_new
            view = memoryview(data)
            for off in range(0, len(data), PAGE_SIZE):
                if view[off : off + PAGE_SIZE] == _ZERO_PAGE:
                    if zero and zero[-1][1] == at + off:
                        zero[-1] = (zero[-1][0], at + off + PAGE_SIZE)
                    else:
                        zero.append((at + off, at + off + PAGE_SIZE))
        # The spans are disjoint: a shortfall is a page that was skipped.
        if sum(end - start for start, end in read) < sum(end - start for start, end in want):
            self._drop(Spans(want) - Spans(read))

    def held(self) -> Spans:
        """The addresses the image holds pages for."""
        if self._held_new:
            # Ranges copied in one round are disjoint, and so never held
            # a zero page and a non-zero one at the same address.
            copied = Spans(self._held_new)
            self._held = self._held | copied
            self._zero = (self._zero - copied) | Spans(self._zero_new)
            self._held_new, self._zero_new = [], []
        return self._held

    def _drop(self, spans: Spans) -> None:
        """Drop the image's pages in ``spans``."""
        if not spans:
            return
        self._to_disk(functools.partial(self._index.drop, spans & self.held()))
        self._held = self._held - spans
        self._zero = self._zero - spans

    def _add(self, copied: _ImageWriter, source: int, at: int, data: bytes) -> None:
        self._index.add(at, at + len(data), source, copied.add(at, data))

    def _write_deferred(self) -> None:
        """Do the writes held back while the process was frozen, and any
        later ones at once."""
        if self._deferred is not None:
            deferred, self._deferred = self._deferred, None
            self._deferred_bytes = 0
            for write in deferred:
                write()

    def _to_disk(self, *writes: Callable[[], None]) -> None:
        """Do ``writes`` now, or once the process runs again if it is frozen."""
        if self._deferred is not None:
            self._deferred.extend(writes)
        else:
            for write in writes:
                write()

    def _forget(self, spans: Spans) -> None:
        """Drop the image's pages in ``spans``, which are no longer mapped."""
        self._drop(spans)
        self._file_spans = self._file_spans - spans

    def _round(self, number: int, frozen: bool) -> RoundStats:
        copied = self._writer = _ImageWriter(self.out / f"round-{number:03d}")
        self._sources.append(copied.path / "pages.bin")
        self._round_spans = []
        if frozen:
            self._deferred = []
        gone: list[list[str]] = []
        t0 = time.monotonic()
        if number == 0:
            # Of a private file mapping, only the pages already copied from
            # the file; a write to another one marks it for a later round.
            todo = list((Spans(self.tracked) - self._file_spans) | own_pages(self.pid, self._file_spans))
        else:
            lo = min(s for s, _ in self.tracked)
            hi = max(e for _, e in self.tracked)
            if self.tracker.guarantees.atomic or frozen:
                result = self.tracker.sweep(lo, hi, clear=True)
            else:
                # The backend reads the marks and clears them in two steps;
                # a write between the two would be lost for good.  Stop the
                # process across the sweep, as CRIU does for soft-dirty; the
                # copy runs with the process running again, and the next
                # round sees whatever it writes meanwhile.
                with _stopped(self.pid, pidfd=self._pidfd) as freeze:
                    result = self.tracker.sweep(lo, hi, clear=True)
                self.sweep_stops_s += freeze.seconds
            gone_spans = list(result.select(having=RangeFlag.GONE).spans())
            gone = [[hex(start), hex(end)] for start, end in gone_spans]
            self._forget(Spans(gone_spans))
            todo = list(result.select(lacking=RangeFlag.GONE).spans())
        t1 = time.monotonic()
        self._copy_spans(todo, copied)
        if frozen:
            # The layout is final now: forget pages no longer mapped (a
            # backend that cannot report unmaps leaves them), and copy what
            # the image lacks of the mappings.  Range by range, so that this
            # costs what changed, not what is tracked.
            current = [m for m in read_maps(self.pid, writable_only=True) if undumpable_reason(m) is None]
            now = Spans((m.start, m.end) for m in current)
            file_now = Spans((m.start, m.end) for m in current if m.file_private)
            self._forget(self.held() - now)
            # Private file mappings known from before and still mapped as
            # such; an address another kind of mapping took over (mremap
            # moves no marks with it on soft_dirty) counts as new.
            self._file_spans = self._file_spans & file_now
            # What the image lacks: of anonymous memory, the pages
            # themselves (a mapping that appeared or grew); of a new private
            # file mapping, the pages that are the process's own.  What it
            # holds of a mapping that took the place of another was
            # reported: as gone and written, or, by soft_dirty, as written
            # in full.
            missing = now - self.held() - self._file_spans
            incomplete = _overlapping(current, missing)
            new_files = Spans((m.start, m.end) for index, m in enumerate(current) if m.file_private and index in incomplete)
            # A backend whose mark lives in the page table entry loses it
            # when reclaim drops the entries of shared memory (a page
            # written, reclaimed and read back shows clean): copy shared
            # mappings whole.
            shared = Spans((m.start, m.end) for m in current if m.shared and not self.tracker.guarantees.reports_zaps)
            # Pages this round copied already are final: the process is stopped.
            done = Spans(self._round_spans)
            self._copy_spans(((missing - new_files) | shared | own_pages(self.pid, new_files)) - done, copied)
            self._file_spans = self._file_spans | new_files
            # The merged image's list: the private file mappings as they are.
            self.file_private = [_file_record(m) for m in current if m.file_private]
            if not self.tracker.guarantees.reports_zaps:
                # Nor does such a backend see MADV_DONTNEED and the like: a
                # zapped page reads differently with no write.  As CRIU
                # does, ask the pagemap which pages are not backed as they
                # were, and copy them again.
                private = Spans((m.start, m.end) for m in current if not m.shared) & self.held()
                # A zapped anonymous page reads as zeros; a private file
                # mapping's reads as the file.
                anonymous = _unbacked(self.pid, private - file_now) - self._zero
                self._copy_spans((anonymous | _unbacked(self.pid, private & file_now)) - Spans(self._round_spans), copied)
        t2 = time.monotonic()
        pages = Spans(self._round_spans).size() // PAGE_SIZE
        stats = RoundStats(number, pages, pages * PAGE_SIZE, t1 - t0, t2 - t1, frozen)
        manifest: dict[str, object] = {
            "round": number,
            "pid": self.pid,
            "backend": self.tracker.name,
            "frozen": frozen,
            "sweep_s": stats.sweep_s,
            "copy_s": stats.copy_s,
            "gone": gone,
            "skipped": self.skipped,
            "file_private": self.file_private,
        }
        self._pending.append((copied, manifest, stats))
        if not frozen:
            # Fold this round's copies into the spans now, not in the
            # frozen round, and parse the maps, which the frozen round
            # then finds unchanged, mostly, in read_maps()'s cache.
            self.held()
            read_maps(self.pid, writable_only=True)
        self.rounds.append(stats)
        return stats

    def _report(self) -> None:
        """Write what the rounds so far held back, their manifests, and
        tell ``progress`` of them."""
        self._write_deferred()
        pending, self._pending = self._pending, []
        for copied, manifest, stats in pending:
            copied.close(manifest)
            if self.progress:
                self.progress(stats)

    def run(self, *, resume: bool = True) -> list[RoundStats]:
        """Dump; with ``resume=False`` the process is left stopped."""
        try:
            return self._run(resume)
        except BaseException:
            for copied, _, _ in self._pending:
                copied.abandon()
            if self._writer is not None:
                self._writer.abandon()
            raise
        finally:
            try:
                self.tracker.close()
            finally:
                if self._pidfd >= 0:
                    os.close(self._pidfd)
                    self._pidfd = -1

    def _run(self, resume: bool) -> list[RoundStats]:
        self._opt_in()
        if not self.tracked:
            raise OSError(errno_codes.ENOENT, f"pid {self.pid} has no memory to dump")
        stats = self._round(0, False)
        number = 1
        while number < self.max_rounds and stats.bytes >= self.converge_bytes:
            self._report()
            stats = self._round(number, False)
            number += 1
        with _stopped(self.pid, pidfd=self._pidfd, resume=resume) as freeze:
            self._round(number, True)
        self.freeze_s = freeze.seconds
        self._report()
        self._index.write_merged(
            self.out / "merged",
            self._sources,
            {"pid": self.pid, "backend": self.tracker.name, "skipped": self.skipped, "file_private": self.file_private},
        )
        return self.rounds


def full_stop_dump(pid: int, out: Path) -> tuple[float, int]:
    """Dump the classic way: stop ``pid``, copy everything, resume it.

    Writes ``out/merged`` in the image format and returns how long the
    process was stopped and how many bytes were copied meanwhile; the
    baseline that pre-copy dumps are compared with.
    """
    image: dict[int, bytes] = {}
    skipped = []
    files = []
    with _stopped(pid) as freeze:
        whole, of_files = [], []
        for m in read_maps(pid):
            reason = undumpable_reason(m)
            if reason is not None:
                skipped.append({"start": hex(m.start), "end": hex(m.end), "path": m.path, "reason": reason})
            elif m.file_private:
                files.append(_file_record(m))
                of_files.append((m.start, m.end))
            else:
                whole.append((m.start, m.end))
        for at, data in read_spans(pid, Spans(whole) | own_pages(pid, Spans(of_files))):
            for off in range(0, len(data), PAGE_SIZE):
                image[at + off] = data[off : off + PAGE_SIZE]
    _write_round(
        Path(out) / "merged", {"pid": pid, "backend": "none (full stop)", "skipped": skipped, "file_private": files}, _runs(image)
    )
    return freeze.seconds, len(image) * PAGE_SIZE


def verify(image_dir: Path, pid: int) -> list[int]:
    """Compare the merged image with ``pid``'s memory; the mismatching pages.

    A page mismatches if its content differs, if it is in the image but no
    longer mapped, or if it is dumpable memory that the image lacks (of a
    private file mapping, a page the process has its own copy of).

    The process is stopped for the comparison and resumed after, unless it
    was stopped already (as :meth:`Dumper.run` with ``resume=False`` leaves
    it), in which case it stays stopped.
    """
    merged = Path(image_dir) / "merged"
    manifest = json.loads((merged / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{merged}: not a pysweep image of format {FORMAT}")
    ranges = sorted((int(r["start"], 16), int(r["end"], 16), r["offset"]) for r in manifest["ranges"])
    listed = {tuple(sorted(record.items())) for record in manifest.get("file_private", [])}
    # SIGSTOP to a stopped process changes nothing; leave it stopped.
    with _stopped(pid, resume=bool(_running_threads(pid))), open(merged / "pages.bin", "rb") as pages:
        # Dumpable memory the image lacks counts as mismatching too.
        dumpable = [m for m in read_maps(pid) if undumpable_reason(m) is None]
        expected = Spans((m.start, m.end) for m in dumpable if not m.file_private) | own_pages(
            pid, Spans((m.start, m.end) for m in dumpable if m.file_private)
        )
        # So do the pages a restore would take from the file, of a private
        # file mapping the manifest does not list as it is.
        expected = expected | Spans(
            (m.start, m.end) for m in dumpable if m.file_private and tuple(sorted(_file_record(m).items())) not in listed
        )
        held = Spans((start, end) for start, end, _ in ranges)
        bad = [a for start, end in expected - held for a in range(start, end, PAGE_SIZE)]
        # A chunk at a time, so that memory stays bounded.
        for start, end, offset in ranges:
            for lo in range(start, end, CHUNK):
                hi = min(end, lo + CHUNK)
                data = os.pread(pages.fileno(), hi - lo, offset + lo - start)
                try:
                    now = read_memory(pid, lo, hi - lo)
                except OSError:
                    bad.extend(range(lo, hi, PAGE_SIZE))
                    continue
                for off in range(0, hi - lo, PAGE_SIZE):
                    if now[off : off + PAGE_SIZE] != data[off : off + PAGE_SIZE]:
                        bad.append(lo + off)
        return bad
