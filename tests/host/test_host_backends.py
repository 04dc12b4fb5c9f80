"""The mainline backends on the host kernel.

``pagemap_scan`` is exercised end to end on this process.  ``soft_dirty``
must refuse on a kernel built without ``CONFIG_MEM_SOFT_DIRTY``, and work
on one built with it; which kind this kernel is, is read independently
from the ``sd`` VMA flag in ``/proc/self/smaps``.  The span set the
backends keep their state in is checked against a set of pages.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pysweep
from libc import MAP_FAILED, libc
from pysweep import PAGE_SIZE, Range, RangeFlag, SweepResult
from pysweep._spans import BackendError, Spans, limited_result
from pysweep.pagemap_scan import PagemapScanBackend
from pysweep.soft_dirty import SoftDirtyBackend

P = PAGE_SIZE


MAP_FIXED = 0x10
MREMAP_MAYMOVE = 1
MREMAP_FIXED = 2
MADV_REMOVE = 9


def map_pages(pages: int, at: int | None = None) -> int:
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | (MAP_FIXED if at is not None else 0)
    address = libc.mmap(at, pages * P, mmap.PROT_READ | mmap.PROT_WRITE, flags, -1, 0)
    if address is None or address == MAP_FAILED:
        raise OSError(ctypes.get_errno(), "mmap")
    return int(address)


def unmap(address: int, pages: int) -> None:
    assert libc.munmap(address, pages * P) == 0


def write(base: int, *pages: int, value: int = 0x5A) -> None:
    for page in pages:
        ctypes.memset(base + page * P, value, 1)


def read(base: int, page: int) -> int:
    return ctypes.string_at(base + page * P, 1)[0]


def spans(base: int, *runs: tuple[int, int]) -> list[tuple[int, int]]:
    """Page runs ``(first, last_exclusive)`` of ``base`` as address pairs."""
    return [(base + a * P, base + b * P) for a, b in runs]


def got(result: SweepResult) -> list[tuple[int, int]]:
    assert all(r.flags == RangeFlag.TOUCHED for r in result.ranges)
    return [(r.start, r.end) for r in result.ranges]


def check_shape(result: SweepResult, start: int, end: int) -> None:
    """Sorted, inside the window, disjoint and coalesced."""
    previous = None
    for r in result.ranges:
        assert start <= r.start < r.end <= end
        if previous is not None:
            assert previous.end < r.start, "ranges overlap, or are adjacent with equal flags"
        previous = r
    assert start <= result.walk_end <= end


@pytest.fixture
def region() -> Iterator[int]:
    base = map_pages(16)
    yield base
    unmap(base, 16)


@pytest.fixture
def backend() -> Iterator[PagemapScanBackend]:
    opened = PagemapScanBackend(os.getpid())
    yield opened
    opened.close()


def kernel_has_soft_dirty() -> bool:
    """A fresh VMA carries VM_SOFTDIRTY, shown as ``sd`` only when configured."""
    base = map_pages(1)
    try:
        with open("/proc/self/smaps") as smaps:
            inside = False
            for line in smaps:
                head = line.split()[0]
                if "-" in head and not head.endswith(":"):
                    low, high = (int(x, 16) for x in head.split("-"))
                    inside = low <= base < high
                elif inside and head == "VmFlags:":
                    return "sd" in line.split()[1:]
    finally:
        unmap(base, 1)
    raise AssertionError("the fresh mapping is missing from smaps")


SOFT_DIRTY = kernel_has_soft_dirty()


# -- pagemap_scan -----------------------------------------------------------


def test_reports_exact_written_ranges(backend: PagemapScanBackend, region: int) -> None:
    write(region, 0)  # populated before tracking: starts clean all the same
    backend.track(region, region + 16 * P)
    end = region + 16 * P
    assert got(backend.sweep(region, end, clear=False)) == []
    write(region, 1, 2, 3, 7, 15)
    expected = spans(region, (1, 4), (7, 8), (15, 16))
    test_only = backend.sweep(region, end, clear=False)
    check_shape(test_only, region, end)
    assert got(test_only) == expected and test_only.walk_end == end
    # A test-only sweep changes nothing.
    assert got(backend.sweep(region, end, clear=False)) == expected
    clearing = backend.sweep(region, end)
    assert got(clearing) == expected and clearing.walk_end == end
    assert got(backend.sweep(region, end)) == []
    write(region, 7)
    assert got(backend.sweep(region, end)) == spans(region, (7, 8))


def test_reads_do_not_mark(backend: PagemapScanBackend, region: int) -> None:
    write(region, 4)
    backend.track(region, region + 16 * P)
    assert read(region, 4) == 0x5A and read(region, 5) == 0  # present and zero page
    assert got(backend.sweep(region, region + 16 * P)) == []


def test_kernel_writes_are_marked(backend: PagemapScanBackend, region: int) -> None:
    # read(2) stores with the kernel's uaccess, not a user-mode fault.
    backend.track(region, region + 16 * P)
    reader, writer = os.pipe()
    try:
        os.write(writer, b"k" * 16)
        buffer = (ctypes.c_char * 16).from_address(region + 9 * P)
        assert os.readv(reader, [memoryview(buffer).cast("B")]) == 16
    finally:
        os.close(reader)
        os.close(writer)
    assert got(backend.sweep(region, region + 16 * P)) == spans(region, (9, 10))


def test_only_tracked_parts_are_reported(backend: PagemapScanBackend, region: int) -> None:
    backend.track(region + 4 * P, region + 8 * P)
    write(region, 0, 3, 4, 7, 8, 12)
    end = region + 16 * P
    assert got(backend.sweep(region, end, clear=False)) == spans(region, (4, 5), (7, 8))
    assert got(backend.sweep(region, end)) == spans(region, (4, 5), (7, 8))


def test_window_clips_ranges(backend: PagemapScanBackend, region: int) -> None:
    backend.track(region, region + 16 * P)
    write(region, *range(2, 10))
    assert got(backend.sweep(region + 4 * P, region + 6 * P)) == spans(region, (4, 6))
    # Outside the window the marks are kept: clearing is per range.
    assert got(backend.sweep(region, region + 16 * P, clear=False)) == spans(region, (2, 4), (6, 10))


def test_untrack_drops_marks(backend: PagemapScanBackend, region: int) -> None:
    end = region + 16 * P
    backend.track(region, end)
    write(region, 1, 5)
    backend.untrack(region + 4 * P, end)
    assert got(backend.sweep(region, end)) == spans(region, (1, 2))
    write(region, 6)
    assert got(backend.sweep(region, end)) == []
    backend.track(region + 4 * P, end)
    assert got(backend.sweep(region, end)) == [], "a range tracked again starts clean"


def test_retrack_keeps_marks(backend: PagemapScanBackend, region: int) -> None:
    end = region + 16 * P
    backend.track(region, region + 8 * P)
    write(region, 2, 10)  # 10 is not tracked yet, but populated
    backend.track(region, end)
    assert got(backend.sweep(region, end, clear=False)) == spans(region, (2, 3))
    backend.track(region + 2 * P, region + 3 * P)
    assert got(backend.sweep(region, end)) == spans(region, (2, 3))


def test_holes(backend: PagemapScanBackend) -> None:
    base = map_pages(12)
    try:
        unmap(base + 4 * P, 4)
        end = base + 12 * P
        with pytest.raises(BackendError) as caught:
            backend.track(base, end)
        assert caught.value.errno == errno.ENOMEM and "is not mapped" in str(caught.value)
        assert got(backend.sweep(base, end)) == [], "a refused track changes nothing"
        backend.track(base, base + 4 * P)
        backend.track(base + 8 * P, end)
        write(base, 3, 8)
        result = backend.sweep(base, end)
        assert got(result) == spans(base, (3, 4), (8, 9)) and result.walk_end == end
    finally:
        unmap(base, 12)


def test_max_ranges_resumes(backend: PagemapScanBackend, region: int) -> None:
    end = region + 16 * P
    backend.track(region, end)
    written = [1, 3, 5, 7, 9, 11]
    write(region, *written)
    first = backend.sweep(region, end, max_ranges=2)
    assert got(first) == spans(region, (1, 2), (3, 4))
    assert first.walk_end == region + 5 * P, "the next range's start, as touched_sweep answers"
    # Nothing at or above walk_end was cleared.
    assert got(backend.sweep(first.walk_end, end, clear=False)) == spans(region, (5, 6), (7, 8), (9, 10), (11, 12))
    collected = got(first)
    cursor = first.walk_end
    calls = 1
    while cursor < end:
        step = backend.sweep(cursor, end, max_ranges=2)
        check_shape(step, cursor, end)
        assert len(step.ranges) <= 2
        collected += got(step)
        assert step.walk_end > cursor
        cursor = step.walk_end
        calls += 1
    assert collected == spans(region, *[(p, p + 1) for p in written])
    assert calls == 3
    assert got(backend.sweep(region, end, clear=False)) == []


def test_max_ranges_small_batch(region: int) -> None:
    # PAGEMAP_SCAN's own output limit: the backend loops on its walk_end.
    small = PagemapScanBackend(os.getpid(), batch=1)
    try:
        end = region + 16 * P
        small.track(region, end)
        write(region, 0, 1, 4, 8, 9, 10, 14)
        expected = spans(region, (0, 2), (4, 5), (8, 11), (14, 15))
        assert got(small.sweep(region, end, clear=False)) == expected
        assert got(small.sweep(region, end, max_ranges=3)) == expected[:3]
        assert got(small.sweep(region, end)) == expected[3:]
    finally:
        small.close()


def test_two_tracked_regions(backend: PagemapScanBackend) -> None:
    first, second = map_pages(8), map_pages(8)
    try:
        backend.track(first, first + 8 * P)
        backend.track(second, second + 8 * P)
        write(first, 0, 7)
        write(second, 3)
        low, high = sorted([first, second])
        assert got(backend.sweep(second, second + 8 * P)) == spans(second, (3, 4))
        assert got(backend.sweep(first, first + 8 * P, clear=False)) == spans(first, (0, 1), (7, 8))
        whole = backend.sweep(low, high + 8 * P)
        assert got(whole) == spans(first, (0, 1), (7, 8))
    finally:
        unmap(first, 8)
        unmap(second, 8)


def test_max_ranges_across_tracked_pieces(backend: PagemapScanBackend, region: int) -> None:
    # Room for exactly the ranges of the first piece: walk_end is the
    # window's end when nothing else was written, else the first range left
    # out, not the start of the next tracked piece.
    end = region + 16 * P
    backend.track(region, region + 4 * P)
    backend.track(region + 8 * P, region + 12 * P)
    write(region, 1)
    assert backend.sweep(region, end, clear=False, max_ranges=1).walk_end == end
    write(region, 10)
    result = backend.sweep(region, end, max_ranges=1)
    assert (got(result), result.walk_end) == (spans(region, (1, 2)), region + 10 * P)
    assert got(backend.sweep(region, end, clear=False)) == spans(region, (10, 11))


def map_shared(pages: int) -> int:
    address = libc.mmap(None, pages * P, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED | mmap.MAP_ANONYMOUS, -1, 0)
    assert address not in (None, MAP_FAILED)
    return int(address)


def test_zap_is_not_reported(backend: PagemapScanBackend) -> None:
    # guarantees.reports_zaps is False: in shared memory a zap leaves a
    # write-protect marker, not a written page.
    base = map_shared(8)
    try:
        write(base, 2)
        backend.track(base, base + 8 * P)
        assert libc.madvise(base, 8 * P, MADV_REMOVE) == 0
        assert read(base, 2) == 0, "the contents changed"
        assert got(backend.sweep(base, base + 8 * P)) == []
        assert not backend.guarantees.reports_zaps
    finally:
        unmap(base, 8)


def test_private_anonymous_zap_is_reported_in_full(backend: PagemapScanBackend, region: int) -> None:
    # In private anonymous memory the kernel drops the markers on a zap and
    # PAGEMAP_SCAN counts the empty entries as written: the whole zapped
    # range is reported, pages never populated included.  Not a guarantee.
    write(region, 2)
    backend.track(region, region + 16 * P)
    assert libc.madvise(region + P, 4 * P, mmap.MADV_DONTNEED) == 0
    assert read(region, 2) == 0
    assert got(backend.sweep(region, region + 16 * P)) == spans(region, (1, 5))


def test_unmapped_range_is_not_reported(backend: PagemapScanBackend) -> None:
    # guarantees.reports_gone is False.
    base = map_pages(4)
    backend.track(base, base + 4 * P)
    write(base, 1)
    unmap(base, 4)
    result = backend.sweep(base, base + 4 * P)
    assert result.ranges == () and result.walk_end == base + 4 * P
    assert not backend.guarantees.reports_gone


def test_moved_range_is_not_followed(backend: PagemapScanBackend) -> None:
    # guarantees.follows_mremap is False: mremap drops the registration.
    base = map_pages(4)
    target = map_pages(4)
    try:
        backend.track(base, base + 4 * P)
        write(base, 1)
        moved = libc.mremap(base, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, target)
        assert moved == target
        write(target, 2)
        assert got(backend.sweep(base, base + 4 * P)) == []
        assert got(backend.sweep(target, target + 4 * P)) == []
        # Tracked at the new address, it starts clean and works.
        backend.track(target, target + 4 * P)
        assert got(backend.sweep(target, target + 4 * P)) == []
        write(target, 3)
        assert got(backend.sweep(target, target + 4 * P)) == spans(target, (3, 4))
        assert not backend.guarantees.follows_mremap
    finally:
        unmap(target, 4)


def test_mapping_over_a_tracked_range_fails_the_sweep(backend: PagemapScanBackend, region: int) -> None:
    # guarantees.reports_new_mappings is False: the new VMA is not registered,
    # and PM_SCAN_CHECK_WPASYNC turns that into an error rather than silence.
    end = region + 16 * P
    backend.track(region, end)
    assert map_pages(4, at=region + 4 * P) == region + 4 * P
    write(region, 1, 5)
    for clear in (False, True):
        with pytest.raises(BackendError) as caught:
            backend.sweep(region, end, clear=clear)
        assert caught.value.errno == errno.EPERM and "track it again" in str(caught.value)
    backend.track(region, end)  # registers and protects the new part only
    assert got(backend.sweep(region, end)) == spans(region, (1, 2))
    write(region, 5)
    assert got(backend.sweep(region, end)) == spans(region, (5, 6))
    assert not backend.guarantees.reports_new_mappings


def test_guarantees(backend: PagemapScanBackend) -> None:
    g = backend.guarantees
    assert (g.remote, g.atomic, g.range_clear) == (False, True, True)
    assert SoftDirtyBackend.guarantees.remote and not SoftDirtyBackend.guarantees.atomic
    assert not SoftDirtyBackend.guarantees.range_clear and SoftDirtyBackend.guarantees.reports_new_mappings


def test_refuses_another_pid() -> None:
    with pytest.raises(pysweep.BackendUnavailableError) as caught:
        PagemapScanBackend(1 if os.getpid() != 1 else 2)
    assert caught.value.errno == errno.EOPNOTSUPP
    assert caught.value.backend == "pagemap_scan"
    assert "not the calling process" in str(caught.value)


def test_closed_backend_refuses(region: int) -> None:
    opened = PagemapScanBackend(os.getpid())
    opened.track(region, region + P)
    opened.close()
    with pytest.raises(ValueError, match="closed"):
        opened.sweep(region, region + P)
    opened.close()


def test_bad_max_ranges(region: int) -> None:
    with pysweep.Tracker(backend="pagemap_scan") as tracker, pytest.raises(ValueError, match="max_ranges"):
        tracker.sweep(region, region + P, max_ranges=0)


# -- soft_dirty and auto ------------------------------------------------------


@pytest.mark.skipif(SOFT_DIRTY, reason="this kernel has CONFIG_MEM_SOFT_DIRTY")
def test_soft_dirty_refuses_without_the_bit() -> None:
    with pytest.raises(pysweep.BackendUnavailableError) as caught:
        SoftDirtyBackend(os.getpid())
    assert caught.value.errno == errno.ENOSYS
    assert caught.value.backend == "soft_dirty"
    assert str(caught.value).startswith("soft_dirty backend: ")
    assert str(caught.value).endswith(
        "clear_refs accepts 4 but never sets the soft-dirty bit (kernel built without CONFIG_MEM_SOFT_DIRTY?)"
    )


@pytest.mark.skipif(not SOFT_DIRTY, reason="this kernel lacks CONFIG_MEM_SOFT_DIRTY")
def test_soft_dirty_works_with_the_bit(region: int) -> None:
    opened = SoftDirtyBackend(os.getpid())
    try:
        opened.track(region, region + 16 * P)
        write(region, 3)
        assert got(opened.sweep(region, region + 16 * P)) == spans(region, (3, 4))
    finally:
        opened.close()


@pytest.fixture
def other_process() -> Iterator[int]:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    yield child.pid
    assert child.stdin is not None
    child.stdin.close()
    child.wait()


def test_auto_picks_pagemap_scan_for_self() -> None:
    expected = "touched_sweep" if pysweep.probe().implemented else "pagemap_scan"
    with pysweep.Tracker(backend="auto") as tracker:
        assert tracker.name == expected
    found = pysweep.available_backends()
    assert found["pagemap_scan"] is None
    assert list(found) == ["touched_sweep", "pagemap_scan", "soft_dirty"]


@pytest.mark.skipif(SOFT_DIRTY or pysweep.probe().implemented, reason="a remote backend works here")
def test_auto_refuses_another_pid_with_every_reason(other_process: int) -> None:
    with pytest.raises(pysweep.BackendUnavailableError) as caught:
        pysweep.Tracker(other_process)
    message = str(caught.value)
    lines = message.splitlines()
    assert lines[0] == f"auto backend: no backend works for pid {other_process}:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["touched_sweep", "pagemap_scan", "soft_dirty"]
    assert "not the calling process" in lines[2] and "CONFIG_MEM_SOFT_DIRTY" in lines[3]
    assert caught.value.pid == other_process
    assert set(caught.value.reasons) == {"touched_sweep", "pagemap_scan", "soft_dirty"}
    assert "not the calling process" in caught.value.reasons["pagemap_scan"]
    copy = pickle.loads(pickle.dumps(caught.value))
    assert copy.reasons == caught.value.reasons and str(copy) == message
    reasons = pysweep.available_backends(other_process)
    assert all(isinstance(reasons[name], pysweep.BackendUnavailableError) for name in reasons)
    assert reasons["pagemap_scan"] is not None and reasons["pagemap_scan"].errno == errno.EOPNOTSUPP


def test_forced_backend_by_name(region: int) -> None:
    with pysweep.Tracker(backend="pagemap_scan") as tracker:
        tracker.track(region, region + 4 * P)
        write(region, 0)
        assert got(tracker.sweep(region, region + 4 * P)) == spans(region, (0, 1))


# -- the span set -------------------------------------------------------------

page_runs = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=8)


def pages_of(runs: list[tuple[int, int]]) -> set[int]:
    return {page for a, b in runs for page in range(a, b)}


def as_spans(runs: list[tuple[int, int]]) -> Spans:
    return Spans([(a * P, b * P) for a, b in runs])


def pages_in(found: Spans) -> set[int]:
    return {page for a, b in found for page in range(a // P, b // P)}


@given(page_runs, page_runs)
def test_spans_match_a_set_of_pages(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> None:
    left, right = as_spans(a), as_spans(b)
    for found in (left, right, left | right, left & right, left - right):
        items = found.items
        assert all(s < e for s, e in items)
        assert all(items[i][1] < items[i + 1][0] for i in range(len(items) - 1)), "not normalized"
    assert pages_in(left | right) == pages_of(a) | pages_of(b)
    assert pages_in(left & right) == pages_of(a) & pages_of(b)
    assert pages_in(left - right) == pages_of(a) - pages_of(b)
    assert pages_in(left.clip(5 * P, 20 * P)) == pages_of(a) & set(range(5, 20))
    assert left.size() == len(pages_of(a)) * P


@given(page_runs, st.integers(1, 5))
def test_limited_result_cuts_before_the_next_range(runs: list[tuple[int, int]], max_ranges: int) -> None:
    found = as_spans(runs)
    end = 64 * P
    result, covered = limited_result(found, 0, end, max_ranges)
    assert [(r.start, r.end) for r in result.ranges] == list(found.items)[:max_ranges]
    if len(found) > max_ranges:
        assert result.walk_end == found.items[max_ranges][0]
    else:
        assert result.walk_end == end
    assert covered == Spans.of(0, result.walk_end)
    assert all(isinstance(r, Range) for r in result.ranges)
