"""The three backends in the patched kernel, which has CONFIG_MEM_SOFT_DIRTY.

``soft_dirty`` is exercised on a child process.  Then one workload runs on
each backend, watching this process, and the results are compared step by
step.  The steps where the backends differ are the ones their
:class:`~pysweep.Guarantees` predict; what each one reports there is
asserted too, so that a change shows:

- zap (``MADV_DONTNEED`` of private anonymous memory): touched_sweep marks
  the pages that had a page table entry; pagemap_scan reports the whole
  zapped range (the kernel drops the write-protect markers and
  ``PAGEMAP_SCAN`` counts the empty entries as written); soft_dirty reports
  nothing (the bit goes with the entry).
- a new mapping over tracked memory: touched_sweep reports ``GONE``;
  pagemap_scan refuses to sweep until the range is tracked again;
  soft_dirty reports the new mapping touched in full (``VM_SOFTDIRTY``),
  and here the whole tracked VMA it merged with too.
- munmap: touched_sweep reports ``GONE``; the others report nothing.
- mremap: touched_sweep reports the old range ``GONE`` and follows the
  move; the others report nothing at either address.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
from collections.abc import Callable, Iterator

import pytest

import pysweep
from libc import MAP_FAILED, libc
from pysweep import PAGE_SIZE, Backend, SweepResult
from pysweep._spans import BackendError
from pysweep.pagemap_scan import PagemapScanBackend
from pysweep.soft_dirty import SoftDirtyBackend, soft_dirty_works
from pysweep.tracker import TouchedSweepBackend

P = PAGE_SIZE
PAGES = 32


MAP_FIXED = 0x10
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
RW = mmap.PROT_READ | mmap.PROT_WRITE


def map_pages(pages: int, at: int | None = None) -> int:
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | (MAP_FIXED if at is not None else 0)
    address = libc.mmap(at, pages * P, RW, flags, -1, 0)
    if address is None or address == MAP_FAILED:
        raise OSError(ctypes.get_errno(), "mmap")
    return int(address)


def unmap(address: int, pages: int) -> None:
    assert libc.munmap(address, pages * P) == 0


def vma_span(address: int) -> tuple[int, int]:
    """The start and end of the VMA that contains *address*."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            start, end = (int(field, 16) for field in line.split(" ", 1)[0].split("-"))
            if start <= address < end:
                return start, end
    raise LookupError(f"nothing mapped at {address:#x}")


def write(base: int, *pages: int) -> None:
    for page in pages:
        ctypes.memset(base + page * P, 0x5A, 1)


def read(base: int, page: int) -> int:
    return ctypes.string_at(base + page * P, 1)[0]


Entry = tuple[int, int, int]  # first page, end page, flags
Outcome = tuple[Entry, ...] | str


def relative(result: SweepResult, base: int) -> tuple[Entry, ...]:
    return tuple(((r.start - base) // P, (r.end - base) // P, int(r.flags)) for r in result.ranges)


T = int(pysweep.RangeFlag.TOUCHED)
G = int(pysweep.RangeFlag.GONE)


def touched(*runs: tuple[int, int]) -> tuple[Entry, ...]:
    return tuple((a, b, T) for a, b in runs)


class Recorder:
    """Runs sweeps through one backend and records their outcomes by step."""

    def __init__(self, backend: Backend, base: int) -> None:
        self.backend = backend
        self.base = base
        self.steps: dict[str, Outcome] = {}

    def page(self, n: int) -> int:
        return self.base + n * P

    def sweep(self, step: str, first: int = 0, last: int = PAGES, **options: object) -> SweepResult | None:
        try:
            result = self.backend.sweep(self.page(first), self.page(last), **options)  # type: ignore[arg-type]
        except BackendError as error:
            self.steps[step] = f"error {errno.errorcode.get(error.errno or 0, error.errno)}"
            return None
        self.steps[step] = relative(result, self.base)
        walk_end = (result.walk_end - self.base) // P
        if walk_end != last:
            self.steps[step + " walk_end"] = ((walk_end, walk_end, 0),)
        return result


def workload(make: Callable[[int], Backend]) -> dict[str, Outcome]:
    """The same writes, tracks and sweeps, on this process, through ``make(pid)``."""
    base = map_pages(PAGES)
    moving = map_pages(4)
    away = map_pages(4)
    backend = make(os.getpid())
    r = Recorder(backend, base)
    try:
        write(base, 0, 5, 1, 2)
        backend.track(base, r.page(PAGES))
        r.sweep("tracked")
        write(base, 1, 2, 3, 10, 31)
        r.sweep("writes, test only", clear=False)
        r.sweep("writes")
        r.sweep("writes, again")
        write(base, 2)
        assert read(base, 20) == 0
        r.sweep("rewrite and read")
        write(base, 4, 5, 6, 7, 8, 12, 14, 16)
        result = r.sweep("max_ranges", max_ranges=2)
        assert result is not None
        r.sweep("resumed", (result.walk_end - base) // P)
        write(base, 3, 4, 5, 6)
        r.sweep("window", 0, 5)
        r.sweep("window, rest test only", clear=False)
        r.sweep("window, rest")
        backend.untrack(r.page(16), r.page(PAGES))
        write(base, 17, 3)
        r.sweep("untracked half")
        backend.track(r.page(16), r.page(PAGES))
        write(base, 18)
        backend.track(base, r.page(16))
        write(base, 0)
        r.sweep("tracked again")
        reader, writer = os.pipe()
        try:
            os.write(writer, b"kernel")
            buffer = (ctypes.c_char * 6).from_address(r.page(12))
            assert os.readv(reader, [memoryview(buffer).cast("B")]) == 6
        finally:
            os.close(reader)
            os.close(writer)
        r.sweep("kernel write")
        assert libc.mprotect(r.page(8), 2 * P, mmap.PROT_READ) == 0
        assert libc.mprotect(r.page(8), 2 * P, RW) == 0
        r.sweep("mprotect round trip")
        write(base, 9)
        r.sweep("write after mprotect")
        # Pages 1 and 2 are populated and clean; 24-27 were never populated.
        assert libc.madvise(r.page(1), 2 * P, mmap.MADV_DONTNEED) == 0
        assert libc.madvise(r.page(24), 4 * P, mmap.MADV_DONTNEED) == 0
        r.sweep("zap")
        assert map_pages(2, at=r.page(28)) == r.page(28)
        write(base, 29)
        r.sweep("mapped over, test only", clear=False)
        r.sweep("mapped over")
        backend.track(r.page(28), r.page(30))
        r.sweep("mapped over, tracked again")
        write(base, 28)
        r.sweep("mapped over, written")
        unmap(r.page(30), 2)
        r.sweep("unmapped")
        backend.track(moving, moving + 4 * P)
        write(moving, 1)
        assert libc.mremap(moving, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, away) == away
        write(away, 2)
        moved = Recorder(backend, moving)
        moved.sweep("moved, old address", 0, 4)
        moved.base = away
        moved.sweep("moved, new address", 0, 4)
        r.steps.update(moved.steps)
    finally:
        backend.close()
        unmap(base, 30)
        unmap(away, 4)
    return r.steps


def touched_sweep_backend(pid: int) -> Backend:
    if not pysweep.probe().implemented:
        pytest.skip("touched_sweep only validates on this kernel")
    return TouchedSweepBackend(pid)


MAKERS: dict[str, Callable[[int], Backend]] = {
    "touched_sweep": touched_sweep_backend,
    "pagemap_scan": PagemapScanBackend,
    "soft_dirty": SoftDirtyBackend,
}


@pytest.fixture(scope="module")
def outcomes() -> dict[str, dict[str, Outcome]]:
    return {name: workload(make) for name, make in MAKERS.items()}


COMMON: dict[str, Outcome] = {
    "tracked": (),
    "writes, test only": touched((1, 4), (10, 11), (31, 32)),
    "writes": touched((1, 4), (10, 11), (31, 32)),
    "writes, again": (),
    "rewrite and read": touched((2, 3)),
    "max_ranges": touched((4, 9), (12, 13)),
    "max_ranges walk_end": ((14, 14, 0),),
    "resumed": touched((14, 15), (16, 17)),
    "window": touched((3, 5)),
    "window, rest test only": touched((5, 7)),
    "window, rest": touched((5, 7)),
    "untracked half": touched((3, 4)),
    "tracked again": touched((0, 1), (18, 19)),
    "kernel write": touched((12, 13)),
    "mprotect round trip": (),
    "write after mprotect": touched((9, 10)),
    "mapped over, written": touched((28, 29)),
}

# Where the backends differ; see the module documentation.
DIFFERENT: dict[str, dict[str, Outcome]] = {
    "touched_sweep": {
        "zap": touched((1, 3)),
        "mapped over, test only": ((28, 30, G),),
        "mapped over": ((28, 30, G),),
        "mapped over, tracked again": (),
        "unmapped": ((30, 32, G),),
        "moved, old address": ((0, 4, G),),
        "moved, new address": touched((0, 4)),
    },
    "pagemap_scan": {
        "zap": touched((1, 3), (24, 28)),
        "mapped over, test only": "error EPERM",
        "mapped over": "error EPERM",
        "mapped over, tracked again": (),
        "unmapped": (),
        "moved, old address": (),
        "moved, new address": (),
    },
    "soft_dirty": {
        "zap": (),
        # The new mapping merges with the tracked VMA around it, which
        # becomes soft-dirty in full.
        "mapped over, test only": touched((0, 32)),
        "mapped over": touched((0, 32)),
        "mapped over, tracked again": (),
        "unmapped": (),
        "moved, old address": (),
        "moved, new address": (),
    },
}


@pytest.mark.parametrize("name", list(MAKERS))
def test_common_steps_agree(outcomes: dict[str, dict[str, Outcome]], name: str) -> None:
    got = outcomes[name]
    assert {step: got.get(step) for step in COMMON} == COMMON


@pytest.mark.parametrize("name", list(MAKERS))
def test_differences_are_the_documented_ones(outcomes: dict[str, dict[str, Outcome]], name: str) -> None:
    got = outcomes[name]
    expected = DIFFERENT[name]
    assert {step: got.get(step) for step in expected} == expected
    assert set(got) <= set(COMMON) | set(expected), "a step reported a walk_end nobody expects"


def test_guarantees_match_the_differences() -> None:
    classes: dict[str, type[Backend]] = {
        "touched_sweep": TouchedSweepBackend,
        "pagemap_scan": PagemapScanBackend,
        "soft_dirty": SoftDirtyBackend,
    }

    def flags(name: str) -> tuple[bool, bool, bool, bool]:
        g = classes[name].guarantees
        return g.reports_gone, g.follows_mremap, g.reports_new_mappings, g.reports_zaps

    assert flags("touched_sweep") == (True, True, False, True)
    assert flags("pagemap_scan") == (False, False, False, False)
    assert flags("soft_dirty") == (False, False, True, False)
    for name, expected in DIFFERENT.items():
        reports_gone, follows, new_mappings, _ = flags(name)
        assert (expected["unmapped"] == ((30, 32, G),)) == reports_gone
        assert (expected["moved, new address"] == touched((0, 4))) == follows
        reported = expected["mapped over"]
        covered = isinstance(reported, tuple) and any(a <= 28 and b >= 30 and f == T for a, b, f in reported)
        assert covered == new_mappings


# -- soft_dirty on another process --------------------------------------------


class Child:
    """A forked child that writes pages of a shared-before-fork region on command."""

    def __init__(self, base: int) -> None:
        self.base = base
        command_read, self._command = os.pipe()
        self._reply, reply_write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            status = 1
            try:
                os.close(self._command)
                os.close(self._reply)
                while True:
                    line = os.read(command_read, 4096).decode()
                    if not line or line.startswith("q"):
                        status = 0
                        break
                    write(base, *(int(n) for n in line.split()))
                    os.write(reply_write, b"k")
            finally:
                os._exit(status)
        os.close(command_read)
        os.close(reply_write)

    def write(self, *pages: int) -> None:
        os.write(self._command, " ".join(map(str, pages)).encode())
        assert os.read(self._reply, 1) == b"k"

    def close(self) -> None:
        os.write(self._command, b"q")
        os.close(self._command)
        os.close(self._reply)
        _, status = os.waitpid(self.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


@contextlib.contextmanager
def child_with_region(pages: int) -> Iterator[Child]:
    base = map_pages(pages)
    write(base, 0, 1)  # populated in the parent, copied on write in the child
    child = Child(base)
    try:
        yield child
    finally:
        child.close()
        unmap(base, pages)


def test_soft_dirty_self_test_passes() -> None:
    assert soft_dirty_works() is None


def sweep_pages(backend: Backend, base: int, first: int = 0, last: int = 16, **options: object) -> tuple[Entry, ...]:
    result = backend.sweep(base + first * P, base + last * P, **options)  # type: ignore[arg-type]
    return relative(result, base)


def test_soft_dirty_on_a_child() -> None:
    with child_with_region(16) as child:
        base = child.base
        backend = SoftDirtyBackend(child.pid)
        try:
            backend.track(base, base + 16 * P)
            assert sweep_pages(backend, base, clear=False) == ()
            child.write(1, 2, 9)
            write(base, 5)  # the parent's copy: not the child's memory
            assert sweep_pages(backend, base, clear=False) == touched((1, 3), (9, 10))
            assert sweep_pages(backend, base, clear=False) == touched((1, 3), (9, 10))
            assert sweep_pages(backend, base) == touched((1, 3), (9, 10))
            assert sweep_pages(backend, base) == ()

            child.write(1, 3, 5, 7)
            first = backend.sweep(base, base + 16 * P, max_ranges=2)
            assert relative(first, base) == touched((1, 2), (3, 4)) and first.walk_end == base + 5 * P
            assert sweep_pages(backend, base, 5, clear=False) == touched((5, 6), (7, 8))
            assert sweep_pages(backend, base, 5) == touched((5, 6), (7, 8))
            assert sweep_pages(backend, base, clear=False) == ()

            child.write(3, 4, 5)
            assert sweep_pages(backend, base, 4, 5) == touched((4, 5))
            assert sweep_pages(backend, base, clear=False) == touched((3, 4), (5, 6)), "clearing is per window"
            assert sweep_pages(backend, base) == touched((3, 4), (5, 6))

            backend.untrack(base + 8 * P, base + 16 * P)
            child.write(9, 2)
            assert sweep_pages(backend, base) == touched((2, 3))
            backend.track(base + 8 * P, base + 16 * P)
            assert sweep_pages(backend, base) == (), "a range tracked again starts clean"
            child.write(6)
            backend.track(base, base + 8 * P)
            assert sweep_pages(backend, base) == touched((6, 7)), "tracking again keeps the marks"

            # A second backend's clear does not lose the first one's marks.
            other = SoftDirtyBackend(child.pid)
            try:
                child.write(12)
                other.track(base, base + 2 * P)
                child.write(0)
                assert sweep_pages(other, base, 0, 2) == touched((0, 1))
                assert sweep_pages(backend, base) == touched((0, 1), (12, 13))
            finally:
                other.close()
        finally:
            backend.close()


def test_soft_dirty_refuses_a_missing_process() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    with pytest.raises(pysweep.BackendUnavailableError) as caught:
        SoftDirtyBackend(pid)
    assert caught.value.errno == errno.ESRCH and f"no process {pid}" in str(caught.value)


def test_auto_for_a_child_and_pagemap_scan_refuses_it() -> None:
    with child_with_region(4) as child:
        with pytest.raises(pysweep.BackendUnavailableError) as caught:
            PagemapScanBackend(child.pid)
        assert caught.value.errno == errno.EOPNOTSUPP
        expected = "touched_sweep" if pysweep.probe().implemented else "soft_dirty"
        with pysweep.Tracker(child.pid) as tracker:
            assert tracker.name == expected
            tracker.track(child.base, child.base + 4 * P)
            child.write(3)
            assert relative(tracker.sweep(child.base, child.base + 4 * P), child.base) == touched((3, 4))


def test_soft_dirty_mremap_carries_the_bit_but_is_not_followed() -> None:
    # guarantees.follows_mremap is False: the moved pages are soft-dirty at
    # the new address, but that address is not tracked.
    base, away = map_pages(4), map_pages(4)
    backend = SoftDirtyBackend(os.getpid())
    try:
        backend.track(base, base + 4 * P)
        write(base, 1)
        assert libc.mremap(base, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, away) == away
        with open("/proc/self/pagemap", "rb") as pagemap:
            pagemap.seek((away // P + 1) * 8)
            entry = int.from_bytes(pagemap.read(8), "little")
        assert entry >> 55 & 1, "move_ptes carries the soft-dirty bit"
        assert sweep_pages(backend, base, 0, 4) == ()
        assert sweep_pages(backend, away, 0, 4) == ()
    finally:
        backend.close()
        unmap(away, 4)


def test_soft_dirty_merged_new_mapping_dirties_the_tracked_vma() -> None:
    # A new mapping that merges with a tracked VMA gives the merged VMA
    # VM_SOFTDIRTY: every page of it reads soft-dirty until the next clear.
    base = map_pages(8)
    unmap(base + 4 * P, 4)
    backend = SoftDirtyBackend(os.getpid())
    try:
        write(base, 1)
        backend.track(base, base + 4 * P)
        assert map_pages(4, at=base + 4 * P) == base + 4 * P
        # The merged VMA may reach further: an adjacent anonymous mapping
        # (the allocator's) can merge with it too.
        start, end = vma_span(base)
        assert start <= base and end >= base + 8 * P, "the mappings did not merge"
        assert sweep_pages(backend, base, 0, 4) == touched((0, 4))
        assert sweep_pages(backend, base, 0, 4) == ()
    finally:
        backend.close()
        unmap(base, 8)
