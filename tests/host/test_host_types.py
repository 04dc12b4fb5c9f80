"""Range and SweepResult: frozen value types that reject what is not one."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysweep import PAGE_SIZE, Range, RangeFlag, SweepResult

ADDRESS_LIMIT = 1 << 64
pages = st.integers(min_value=0, max_value=ADDRESS_LIMIT // PAGE_SIZE - 1)
known_flags = st.integers(min_value=0, max_value=7)


@given(pages, st.integers(min_value=1, max_value=1 << 20), known_flags)
def test_valid_ranges_are_accepted(first: int, count: int, flags: int) -> None:
    start, end = first * PAGE_SIZE, (first + count) * PAGE_SIZE
    if end >= ADDRESS_LIMIT:
        end = ADDRESS_LIMIT - PAGE_SIZE
        if end <= start:
            return
    r = Range(start, end, flags)
    assert (r.start, r.end, r.flags) == (start, end, flags)
    assert isinstance(r.flags, RangeFlag)
    assert len(r) == end - start and r.pages == (end - start) // PAGE_SIZE
    assert start in r and end - 1 in r and end not in r


@given(st.integers(min_value=0, max_value=1 << 40).filter(lambda a: a % PAGE_SIZE))
def test_unaligned_addresses_are_rejected(address: int) -> None:
    with pytest.raises(ValueError, match=r"start .* not page aligned"):
        Range(address, address + 4 * PAGE_SIZE)
    with pytest.raises(ValueError, match=r"end .* not page aligned"):
        Range(0, address + PAGE_SIZE)


@given(pages, pages)
def test_end_must_be_above_start(a: int, b: int) -> None:
    start, end = max(a, b) * PAGE_SIZE, min(a, b) * PAGE_SIZE
    with pytest.raises(ValueError, match="not above start"):
        Range(start, end)


@given(st.integers(min_value=8, max_value=(1 << 64) - 1))
def test_unknown_flags_are_rejected(flags: int) -> None:
    with pytest.raises(ValueError, match="outside the known mask 0x7"):
        Range(0, PAGE_SIZE, flags)


@pytest.mark.parametrize(
    ("start", "end", "flags", "error"),
    [
        (-PAGE_SIZE, 0, 1, ValueError),
        (0, 1 << 64, 1, ValueError),
        (0, PAGE_SIZE, -1, ValueError),
        (0.0, PAGE_SIZE, 1, TypeError),
        ("0", PAGE_SIZE, 1, TypeError),
        (False, PAGE_SIZE, 1, TypeError),
        (0, PAGE_SIZE, True, TypeError),
        (0, PAGE_SIZE, None, TypeError),
    ],
)
def test_bad_types_and_bounds_are_rejected(start: object, end: object, flags: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        Range(start, end, flags)  # type: ignore[arg-type]


def test_flag_properties() -> None:
    plain = Range(0, PAGE_SIZE)
    assert plain.flags == RangeFlag.TOUCHED
    assert (plain.touched, plain.gone, plain.overreported) == (True, False, False)
    odd = Range(0, PAGE_SIZE, RangeFlag.GONE | RangeFlag.OVERREPORTED)
    assert (odd.touched, odd.gone, odd.overreported) == (False, True, True)


def test_range_is_frozen_slotted_and_hashable() -> None:
    r = Range(PAGE_SIZE, 2 * PAGE_SIZE, 1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        r.start = 0  # type: ignore[misc]
    assert not hasattr(r, "__dict__")
    assert r == Range(PAGE_SIZE, 2 * PAGE_SIZE, RangeFlag.TOUCHED) and hash(r) == hash(Range(PAGE_SIZE, 2 * PAGE_SIZE))
    assert attrs.evolve(r, flags=3).flags == RangeFlag.TOUCHED | RangeFlag.GONE
    with pytest.raises(ValueError):
        attrs.evolve(r, end=0)


def test_sweep_result() -> None:
    ranges = [Range(0, PAGE_SIZE), Range(4 * PAGE_SIZE, 6 * PAGE_SIZE, 5)]
    result = SweepResult(ranges, 8 * PAGE_SIZE)
    assert result.ranges == tuple(ranges) and result.walk_end == 8 * PAGE_SIZE
    assert result.pages == 3
    assert SweepResult((), 0).pages == 0
    with pytest.raises(TypeError):
        SweepResult([(0, PAGE_SIZE, 1)], 0)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="walk_end"):
        SweepResult((), 1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.walk_end = 0  # type: ignore[misc]
    assert not hasattr(result, "__dict__")
