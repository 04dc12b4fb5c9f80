"""The reference model on its own: the documented rules, one example each.

The state machine compares the model with the kernel; these tests pin the
model to the words of Documentation/userspace-api/touched_sweep.rst, so
that a rule cannot drift in the model and the kernel together.
"""

from __future__ import annotations

import errno

import pytest

from pysweep import PAGE_SIZE, Range, RangeFlag
from pysweep.model import AddressSpace, Advice, ModelError

P = PAGE_SIZE
BASE = 0x1000_0000
RW = 3
RO = 1
T = RangeFlag.TOUCHED
G = RangeFlag.GONE
O = RangeFlag.OVERREPORTED  # noqa: E741 - the flag's initial


def page(n: int) -> int:
    return BASE + n * P


def ranges(*spans: tuple[int, int, RangeFlag]) -> tuple[Range, ...]:
    return tuple(Range(page(a), page(b), flags) for a, b, flags in spans)


@pytest.fixture
def space() -> AddressSpace:
    """Eight tracked private pages at BASE, and eight more untracked after a gap."""
    model = AddressSpace()
    model.mmap(page(0), 8 * P, RW)
    model.mmap(page(9), 8 * P, RW)
    model.track(page(0), page(8))
    return model


def window(model: AddressSpace, *, clear: bool = False, vec_len: int | None = None) -> tuple[Range, ...]:
    return model.sweep(page(0), page(32), clear=clear, vec_len=vec_len).ranges


def test_writes_are_reported_coalesced_and_only_where_tracked(space: AddressSpace) -> None:
    space.write(page(1), 2 * P)
    space.write(page(3), P)
    space.write(page(6), P)
    space.write(page(10), P)  # untracked
    assert window(space) == ranges((1, 4, T), (6, 7, T))


def test_test_only_changes_nothing_and_clear_forgets(space: AddressSpace) -> None:
    space.write(page(2), P)
    assert window(space) == window(space) == ranges((2, 3, T))
    assert window(space, clear=True) == ranges((2, 3, T))
    assert window(space) == ()


def test_tracking_twice_keeps_marks_and_new_pages_start_clean(space: AddressSpace) -> None:
    space.write(page(2), P)
    space.write(page(10), P)
    space.track(page(0), page(8))
    space.track(page(9), page(17))
    assert window(space) == ranges((2, 3, T))


def test_track_over_a_hole_fails_and_changes_nothing(space: AddressSpace) -> None:
    with pytest.raises(ModelError) as failed:
        space.track(page(4), page(12))
    assert failed.value.errno == errno.ENOMEM
    assert not space.vma_at(page(10)).tracked  # type: ignore[union-attr]


def test_untrack_drops_marks_and_reports_nothing_gone(space: AddressSpace) -> None:
    space.write(page(0), 4 * P)
    space.untrack(page(2), page(20))  # holes are skipped
    assert window(space) == ranges((0, 2, T))


def test_munmap_is_gone_and_gone_wins_over_touched(space: AddressSpace) -> None:
    space.write(page(0), 8 * P)
    space.munmap(page(2), 2 * P)
    space.mmap(page(3), P, RW)
    space.track(page(3), page(4))
    space.write(page(3), P)
    assert window(space) == ranges((0, 2, T), (2, 4, G), (4, 8, T))


def test_clearing_gone_clears_the_marks_under_it(space: AddressSpace) -> None:
    space.munmap(page(2), P)
    space.mmap(page(2), P, RW)
    space.track(page(2), page(3))
    space.write(page(2), P)
    assert window(space, clear=True) == ranges((2, 3, G))
    assert window(space) == ()
    space.write(page(2), P)
    assert window(space) == ranges((2, 3, T))


def test_map_fixed_over_tracked_memory_is_gone_and_untracked(space: AddressSpace) -> None:
    space.mmap(page(6), 4 * P, RW)
    space.write(page(6), 4 * P)
    assert window(space) == ranges((6, 8, G))


def test_mremap_moves_tracking_with_every_page_touched(space: AddressSpace) -> None:
    space.mremap(page(0), 2 * P, 3 * P, page(20))
    assert window(space) == ranges((0, 2, G), (20, 23, T))


def test_mremap_dontunmap_reports_the_old_range_gone_once(space: AddressSpace) -> None:
    space.write(page(0), P)
    space.mremap(page(0), 2 * P, 2 * P, page(20), dontunmap=True)
    assert window(space, clear=True) == ranges((0, 2, G), (20, 22, T))
    space.write(page(1), P)  # still tracked
    assert window(space) == ranges((1, 2, T))


def test_mremap_needs_one_vma(space: AddressSpace) -> None:
    with pytest.raises(ModelError) as failed:
        space.mremap(page(7), 3 * P, 3 * P, page(20))
    assert failed.value.errno == errno.EFAULT


def test_zaps_mark_pages_that_had_an_entry(space: AddressSpace) -> None:
    space.write(page(0), 2 * P)
    window(space, clear=True)
    space.madvise(page(0), 4 * P, Advice.DONTNEED)
    assert window(space) == ranges((0, 2, T))


def test_lazily_freed_pages_stay_overreported(space: AddressSpace) -> None:
    space.write(page(0), P)
    window(space, clear=True)
    space.madvise(page(0), P, Advice.FREE)
    assert window(space) == ranges((0, 1, T))
    assert window(space, clear=True) == ranges((0, 1, T | O))
    assert window(space, clear=True) == ranges((0, 1, T | O))
    space.madvise(page(0), P, Advice.DONTNEED)
    assert window(space, clear=True) == ranges((0, 1, T))
    assert window(space) == ()


def test_a_store_ends_lazy_freeing(space: AddressSpace) -> None:
    space.write(page(0), 2 * P)
    space.madvise(page(0), 2 * P, Advice.FREE)
    space.write(page(0), P)
    assert window(space, clear=True) == ranges((0, 1, T), (1, 2, T | O))
    assert window(space, clear=True) == ranges((1, 2, T | O))


def test_splitting_keeps_marks_and_mprotect_marks_nothing(space: AddressSpace) -> None:
    space.write(page(3), P)
    space.mprotect(page(2), 2 * P, RO)
    space.mprotect(page(2), 2 * P, RW)
    assert [vma.tracked for vma in space.vmas if vma.start < page(8)] == [True, True, True]
    assert window(space) == ranges((3, 4, T))


def test_fork_changes_nothing_in_the_parent(space: AddressSpace) -> None:
    space.write(page(5), P)
    space.fork()
    assert window(space) == ranges((5, 6, T))


def test_bounded_output_resumes_at_the_first_entry_left_out(space: AddressSpace) -> None:
    for n in (0, 2, 4, 6):
        space.write(page(n), P)
    result = space.sweep(page(0), page(32), clear=True, vec_len=2)
    assert result.ranges == ranges((0, 1, T), (2, 3, T))
    assert result.walk_end == page(4)
    assert window(space) == ranges((4, 5, T), (6, 7, T))


def test_zero_entries_find_the_first_address_and_clear_nothing(space: AddressSpace) -> None:
    space.write(page(5), P)
    result = space.sweep(page(0), page(32), clear=True, vec_len=0)
    assert (result.ranges, result.walk_end) == ((), page(5))
    assert window(space) == ranges((5, 6, T))


def test_window_clips_entries(space: AddressSpace) -> None:
    space.write(page(0), 8 * P)
    assert space.sweep(page(2), page(5), clear=False).ranges == ranges((2, 5, T))
