"""SweepResult as an array of entries: the same value as one built from
Range objects, read without objects, Range objects built only on demand.

Speed is not asserted here; tools/testing/bench/pysweep_bench.py measures it.
"""

from __future__ import annotations

import array
import copy
import os
import pickle
from collections.abc import Iterator

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pysweep
from pysweep import PAGE_SIZE, Range, RangeFlag, SweepResult, _syscall, cli
from pysweep._syscall import ffi

P = PAGE_SIZE
T, G, OVER = RangeFlag.TOUCHED, RangeFlag.GONE, RangeFlag.OVERREPORTED


@st.composite
def layouts(draw: st.DrawFn) -> list[Range]:
    """Sorted, disjoint ranges with every flag mask, adjacent ones included."""
    cursor, ranges = draw(st.integers(0, 4)), []
    for _ in range(draw(st.integers(0, 10))):
        cursor += draw(st.integers(0, 3))
        length = draw(st.integers(1, 4))
        ranges.append(Range(cursor * P, (cursor + length) * P, draw(st.integers(0, 7))))
        cursor += length
    return ranges


def entries_of(ranges: list[Range]) -> array.array[int]:
    return array.array("Q", [word for r in ranges for word in (r.start, r.end, int(r.flags))])


def from_entries(ranges: list[Range], walk_end: int) -> SweepResult:
    return SweepResult._from_entries(entries_of(ranges), walk_end)


WALK_END = 64 * P


@given(layouts())
def test_entries_and_ranges_make_the_same_value(ranges: list[Range]) -> None:
    by_hand = SweepResult(ranges, WALK_END)
    built = from_entries(ranges, WALK_END)
    assert by_hand == built and hash(by_hand) == hash(built)
    assert built.ranges == by_hand.ranges == tuple(ranges)
    assert repr(built) == repr(by_hand)
    assert built != SweepResult(ranges, WALK_END + P)
    if ranges:
        assert built != SweepResult(ranges[1:], WALK_END)
        assert built != SweepResult([*ranges[:-1], attrs.evolve(ranges[-1], flags=ranges[-1].flags ^ RangeFlag.TOUCHED)], WALK_END)


@given(layouts())
def test_accessors_agree_with_the_ranges(ranges: list[Range]) -> None:
    result = from_entries(ranges, WALK_END)
    assert len(result) == len(ranges)
    assert list(result) == [(r.start, r.end, int(r.flags)) for r in ranges]
    assert list(result.spans()) == [(r.start, r.end) for r in ranges]
    assert result.pages == sum(r.pages for r in ranges)
    assert result.touched_pages == sum(r.pages for r in ranges if r.touched and not r.gone)
    assert result.walk_end == WALK_END


@given(layouts(), st.integers(0, 7), st.integers(0, 7))
def test_select_keeps_the_ranges_with_and_without_flags(ranges: list[Range], having: int, lacking: int) -> None:
    result = from_entries(ranges, WALK_END)
    selected = result.select(having=having, lacking=lacking)
    kept = [r for r in ranges if r.flags & having == having and not r.flags & lacking]
    assert selected == SweepResult(kept, WALK_END)
    assert selected.ranges == tuple(kept)


def test_select_refuses_what_is_not_a_mask() -> None:
    with pytest.raises(TypeError):
        SweepResult((), 0).select(having="TOUCHED")  # type: ignore[arg-type]


def test_ranges_are_built_on_first_use_and_kept() -> None:
    result = from_entries([Range(0, P), Range(2 * P, 4 * P, T | OVER), Range(5 * P, 6 * P, G)], 8 * P)
    assert result._ranges is None
    # Reading without objects builds none.
    assert (len(result), result.pages, result.touched_pages) == (3, 4, 3)
    assert len(list(result)) == len(list(result.spans())) == 3
    assert len(result.select(having=G)) == 1
    assert result._ranges is None
    first = result.ranges
    assert result.ranges is first
    assert [type(r.flags) for r in first] == [RangeFlag] * 3
    assert first[1] == Range(2 * P, 4 * P, T | OVER) and first[1].overreported


def test_a_hand_built_result_keeps_its_ranges() -> None:
    given_ranges = (Range(0, P), Range(3 * P, 4 * P, G))
    result = SweepResult(iter(given_ranges), 4 * P)
    assert result.ranges == given_ranges
    assert all(a is b for a, b in zip(result.ranges, given_ranges, strict=True))


def test_unknown_flags_from_entries_are_refused_when_ranges_are_built() -> None:
    result = SweepResult._from_entries(array.array("Q", [0, P, 8]), P)
    assert list(result) == [(0, P, 8)]
    with pytest.raises(ValueError, match="outside the known mask"):
        result.ranges  # noqa: B018 - the property builds the ranges


@pytest.mark.parametrize(
    ("ranges", "walk_end", "error"),
    [
        ([(0, P, 1)], P, TypeError),
        ([Range(0, P), None], P, TypeError),
        ([0, P, 1], P, TypeError),
        (None, P, TypeError),
        ([Range(0, P)], P + 1, ValueError),
        ([Range(0, P)], -P, ValueError),
        ([Range(0, P)], 1 << 64, ValueError),
        ([Range(0, P)], float(P), TypeError),
        ([Range(0, P)], True, TypeError),
    ],
)
def test_bad_hand_built_results_are_refused(ranges: object, walk_end: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        SweepResult(ranges, walk_end)  # type: ignore[arg-type]


def test_bad_entries_are_refused() -> None:
    with pytest.raises(TypeError, match="array of u64"):
        SweepResult._from_entries(array.array("q", [0, P, 1]), P)
    with pytest.raises(TypeError, match="array of u64"):
        SweepResult._from_entries([0, P, 1], P)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="triples"):
        SweepResult._from_entries(array.array("Q", [0, P]), P)
    with pytest.raises(ValueError, match="walk_end"):
        SweepResult._from_entries(array.array("Q"), 1)


def test_result_is_frozen_slotted_and_pickles_without_its_ranges() -> None:
    result = SweepResult([Range(0, P), Range(2 * P, 3 * P, G)], 4 * P)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.walk_end = 0  # type: ignore[misc]
    assert not hasattr(result, "__dict__")
    again = pickle.loads(pickle.dumps(result))
    assert again == result and again._ranges is None and again.ranges == result.ranges
    assert copy.deepcopy(result) == result == copy.copy(result)
    assert b"Range" not in pickle.dumps(result)


def test_empty_result() -> None:
    empty = SweepResult((), 0)
    assert (len(empty), empty.pages, empty.touched_pages, list(empty), empty.ranges) == (0, 0, 0, [], ())
    assert not empty
    assert empty == SweepResult._from_entries(array.array("Q"), 0) == empty.select(having=T)


@given(layouts())
def test_cli_totals_count_from_the_entries(ranges: list[Range]) -> None:
    totals = cli.Totals.of(from_entries(ranges, WALK_END))
    touched = [r for r in ranges if r.touched and not r.gone]
    gone = [r for r in ranges if r.gone]
    assert totals == cli.Totals(
        ranges=len(ranges),
        touched_ranges=len(touched),
        touched_pages=sum(r.pages for r in touched),
        gone_ranges=len(gone),
        gone_pages=sum(r.pages for r in gone),
        overreported_pages=sum(r.pages for r in touched if r.overreported),
    )


# The sweep loop: entries of successive calls, joined where calls meet.


class Calls:
    """Answers each SWEEP with the next list of entries, as given."""

    def __init__(self, *answers: tuple[list[tuple[int, int, int]], int]) -> None:
        self.answers = list(answers)
        self.starts: list[int] = []

    def __call__(self, pidfd: int, *, op: int, start: int, vec: int, vec_len: int, **_: object) -> tuple[int, int]:
        self.starts.append(start)
        written, walk_end = self.answers.pop(0)
        out = ffi.cast("struct touched_range *", vec)
        for i, (a, b, flags) in enumerate(written):
            out[i].start, out[i].end, out[i].flags = a, b, flags
        return len(written), walk_end


@pytest.fixture
def sweeper(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[pytest.MonkeyPatch, pysweep.Target]]:
    monkeypatch.setattr(_syscall, "_probe_result", _syscall.ProbeResult(True, True, 0, "stand-in", "x"))
    with pysweep.Target.from_pid(os.getpid()) as target:
        yield monkeypatch, target


def sweep_with(sweeper: tuple[pytest.MonkeyPatch, pysweep.Target], calls: Calls, end: int, **options: int) -> SweepResult:
    monkeypatch, target = sweeper
    monkeypatch.setattr(pysweep, "call", calls)
    return target.sweep(0, end, **options)  # type: ignore[arg-type]


def test_ranges_that_meet_at_a_call_boundary_with_equal_flags_are_joined(
    sweeper: tuple[pytest.MonkeyPatch, pysweep.Target],
) -> None:
    calls = Calls(
        ([(0, P, T), (2 * P, 4 * P, T)], 4 * P),
        ([(4 * P, 5 * P, T), (5 * P, 6 * P, G)], 6 * P),
        ([(6 * P, 7 * P, G)], 7 * P),
        ([(7 * P, 8 * P, T)], 16 * P),
    )
    result = sweep_with(sweeper, calls, 16 * P, batch=2)
    assert calls.starts == [0, 4 * P, 6 * P, 7 * P]
    assert result == SweepResult([Range(0, P), Range(2 * P, 5 * P), Range(5 * P, 7 * P, G), Range(7 * P, 8 * P)], 16 * P)
    assert result._ranges is None


def test_a_joined_range_counts_once_against_max_ranges(sweeper: tuple[pytest.MonkeyPatch, pysweep.Target]) -> None:
    calls = Calls(([(0, P, T)], P), ([(P, 2 * P, T)], 2 * P), ([(3 * P, 4 * P, T)], 8 * P))
    result = sweep_with(sweeper, calls, 8 * P, batch=1, max_ranges=2)
    assert result == SweepResult([Range(0, 2 * P), Range(3 * P, 4 * P)], 8 * P)


def test_ranges_with_other_flags_or_a_gap_are_not_joined(sweeper: tuple[pytest.MonkeyPatch, pysweep.Target]) -> None:
    calls = Calls(([(0, P, T)], P), ([(P, 2 * P, T | OVER)], 2 * P), ([(3 * P, 4 * P, T | OVER)], 8 * P))
    result = sweep_with(sweeper, calls, 8 * P, batch=1)
    assert list(result) == [(0, P, T), (P, 2 * P, T | OVER), (3 * P, 4 * P, T | OVER)]


def test_a_range_below_the_call_start_is_reported(sweeper: tuple[pytest.MonkeyPatch, pysweep.Target]) -> None:
    calls = Calls(([(0, 2 * P, T)], 2 * P), ([(P, 3 * P, T)], 8 * P))
    with pytest.raises(RuntimeError, match="below where the call started"):
        sweep_with(sweeper, calls, 8 * P, batch=1)


def test_a_dense_sweep_is_collected_whole(sweeper: tuple[pytest.MonkeyPatch, pysweep.Target]) -> None:
    count, batch = 3000, 1024
    every = [(2 * i * P, (2 * i + 1) * P, int(T)) for i in range(count)]
    answers = [(every[i : i + batch], every[i + batch][0] if i + batch < count else 2 * count * P) for i in range(0, count, batch)]
    result = sweep_with(sweeper, Calls(*answers), 2 * count * P, batch=batch)
    assert len(result) == count and result.pages == count and list(result) == every


def test_limited_result_builds_entries() -> None:
    from pysweep._spans import Spans, limited_result

    result, covered = limited_result(Spans([(0, P), (2 * P, 5 * P), (7 * P, 8 * P)]), 0, 8 * P, 2)
    assert result == SweepResult([Range(0, P), Range(2 * P, 5 * P)], 7 * P) and result._ranges is None
    assert covered == Spans.of(0, 7 * P)


def test_pagemap_regions_are_joined_within_and_across_calls() -> None:
    pagemap_scan = pytest.importorskip("pysweep.pagemap_scan")
    mainline = pagemap_scan.ffi
    written = 1 << 6  # PAGE_IS_WRITTEN: the categories are not flags

    def regions(*spans: tuple[int, int]) -> object:
        vec = mainline.new("struct page_region[]", len(spans))
        for i, (a, b) in enumerate(spans):
            vec[i].start, vec[i].end, vec[i].categories = a, b, written
        return vec

    entries: array.array[int] = array.array("Q")
    pagemap_scan._append_written(entries, regions((0, P), (2 * P, 3 * P)), 2)
    pagemap_scan._append_written(entries, regions((3 * P, 4 * P), (4 * P, 6 * P), (7 * P, 8 * P)), 3)
    pagemap_scan._append_written(entries, regions((9 * P, 10 * P)), 1)
    assert list(SweepResult._from_entries(entries, 16 * P)) == [(0, P, T), (2 * P, 6 * P, T), (7 * P, 8 * P, T), (9 * P, 10 * P, T)]


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 3)), max_size=12), st.integers(1, 4))
def test_pagemap_joining_matches_joining_one_by_one(gaps: list[tuple[int, int]], per_call: int) -> None:
    pagemap_scan = pytest.importorskip("pysweep.pagemap_scan")
    spans, cursor = [], 0
    for gap, length in gaps:
        cursor += gap
        spans.append((cursor * P, (cursor + length) * P))
        cursor += length
    entries: array.array[int] = array.array("Q")
    for chunk in (spans[i : i + per_call] for i in range(0, len(spans), per_call)):
        vec = pagemap_scan.ffi.new("struct page_region[]", len(chunk))
        for i, (a, b) in enumerate(chunk):
            vec[i].start, vec[i].end = a, b
        pagemap_scan._append_written(entries, vec, len(chunk))
    joined: list[tuple[int, int]] = []
    for a, b in spans:
        if joined and joined[-1][1] == a:
            joined[-1] = (joined[-1][0], b)
        else:
            joined.append((a, b))
    assert list(SweepResult._from_entries(entries, cursor * P).spans()) == joined
