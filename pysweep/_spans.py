"""What the mainline backends and the dumper share: page-aligned span sets,
runs of pagemap entries, the mapping check of ``track``, results built from
spans, and their error type.

The touched_sweep backend gets tracked ranges, coalescing and ``walk_end``
from the kernel.  The mainline backends keep their tracked ranges (and
``soft_dirty`` its unreported marks) in user space, as :class:`Spans`.
"""

from __future__ import annotations

import errno as errno_codes
import heapq
import os
from collections.abc import Iterable, Iterator

import attrs

from pysweep import PAGE_SIZE, SweepResult
from pysweep._syscall import SweepError
from pysweep.maps import read_maps

__all__ = ["BackendError", "Spans", "check_mapped", "limited_result", "mapped", "pagemap_runs"]

Span = tuple[int, int]


class BackendError(SweepError):
    """A mainline backend's operation failed; the message names the backend and says why.

    ``backend`` is the backend's name.  Like every :class:`SweepError`, it
    pickles with its fields, so it crosses process pools.
    """

    def __init__(self, errno: int, reason: str, *, backend: str = "", target: str | None = None) -> None:
        super().__init__(errno, reason, target=target)
        self.backend = backend

    def __str__(self) -> str:
        return f"{self.backend} backend: {self.strerror}"


def _joined(spans: Iterable[Span]) -> list[Span]:
    # Join overlapping and adjacent spans of sorted ``spans``; drop empty ones.
    out: list[Span] = []
    for start, end in spans:
        if start >= end:
            continue
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _normalized(spans: Iterable[Span]) -> tuple[Span, ...]:
    return tuple(_joined(sorted(spans)))


@attrs.frozen
class Spans:
    """A set of addresses as sorted, disjoint, non-adjacent ``(start, end)`` spans.

    Set operators return new sets; the work is linear in the spans involved,
    which is what a sweep touches anyway.
    """

    items: tuple[Span, ...] = attrs.field(default=(), converter=_normalized)

    @classmethod
    def of(cls, start: int, end: int) -> Spans:
        """The span ``[start, end)`` (empty if ``start >= end``)."""
        return cls(((start, end),))

    def __iter__(self) -> Iterator[Span]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    @classmethod
    def _of_normalized(cls, items: list[Span]) -> Spans:
        # The set operators' results are sorted, disjoint and non-adjacent
        # already: skip the converter's sort.
        spans = cls()
        object.__setattr__(spans, "items", tuple(items))
        return spans

    def size(self) -> int:
        """Bytes covered."""
        return sum(end - start for start, end in self.items)

    def __or__(self, other: Spans) -> Spans:
        return Spans._of_normalized(_joined(heapq.merge(self.items, other.items)))

    def __and__(self, other: Spans) -> Spans:
        out: list[Span] = []
        a, b = self.items, other.items
        i = j = 0
        while i < len(a) and j < len(b):
            start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
            if start < end:
                out.append((start, end))
            if a[i][1] < b[j][1]:
                i += 1
            else:
                j += 1
        return Spans._of_normalized(out)

    def __sub__(self, other: Spans) -> Spans:
        out: list[Span] = []
        b = other.items
        j = 0
        for start, end in self.items:
            while j < len(b) and b[j][1] <= start:
                j += 1
            cursor, k = start, j
            while k < len(b) and b[k][0] < end:
                if b[k][0] > cursor:
                    out.append((cursor, b[k][0]))
                cursor = max(cursor, b[k][1])
                k += 1
            if cursor < end:
                out.append((cursor, end))
        return Spans._of_normalized(out)

    def clip(self, start: int, end: int) -> Spans:
        """The part inside ``[start, end)``."""
        return self & Spans.of(start, end)


def mapped(pid: int | str, start: int, end: int) -> Spans:
    """The parts of ``[start, end)`` covered by mappings of process ``pid``
    (``"self"`` for the caller), read from ``/proc/PID/maps``."""
    return Spans((max(m.start, start), min(m.end, end)) for m in read_maps(pid) if m.end > start and m.start < end)


# Bytes per /proc/PID/pagemap entry; entries read per pread (4 GiB of
# address space in 8 MiB).
_PAGEMAP_ENTRY = 8
_PAGEMAP_CHUNK = 1 << 20


def pagemap_runs(pagemap: int, spans: Spans, byte: int, table: bytes) -> Spans:
    """The pages of ``spans`` whose ``/proc/PID/pagemap`` entry (read from
    the open file ``pagemap``) has a byte ``byte`` that ``table`` maps to 1.

    One byte per entry is picked out and translated, and the runs of 1 are
    found with ``bytes.find``: no Python work per page.
    """
    found: list[Span] = []
    for start, end in spans:
        page, last = start // PAGE_SIZE, end // PAGE_SIZE
        while page < last:
            data = os.pread(pagemap, min(last - page, _PAGEMAP_CHUNK) * _PAGEMAP_ENTRY, page * _PAGEMAP_ENTRY)
            got = len(data) // _PAGEMAP_ENTRY
            if not got:
                raise OSError(errno_codes.EIO, f"short pagemap read at page {page:#x}")
            flags = data[byte::_PAGEMAP_ENTRY].translate(table)[:got]
            index = flags.find(1)
            while index >= 0:
                stop = flags.find(0, index)
                stop = got if stop < 0 else stop
                found.append(((page + index) * PAGE_SIZE, (page + stop) * PAGE_SIZE))
                index = flags.find(1, stop)
            page += got
    return Spans(found)


def check_mapped(pid: int | str, start: int, end: int, *, backend: str) -> None:
    """Refuse a ``track`` window with a hole, as touched_sweep does (ENOMEM)."""
    holes = Spans.of(start, end) - mapped(pid, start, end)
    if holes:
        hole_start, hole_end = holes.items[0]
        raise BackendError(
            errno_codes.ENOMEM,
            f"cannot track {start:#x}-{end:#x}: {hole_start:#x}-{hole_end:#x} is not mapped",
            backend=backend,
        )


def limited_result(found: Spans, start: int, end: int, max_ranges: int | None) -> tuple[SweepResult, Spans]:
    """The :class:`~pysweep.SweepResult` reporting ``found`` (already inside
    the window), cut to ``max_ranges``, and the part of the window it covers.

    When the cut leaves ranges out, ``walk_end`` is the start of the first
    one left out, as touched_sweep answers: everything below it was
    reported, nothing at or above it was.
    """
    items = found.items
    walk_end = end
    if max_ranges is not None and len(items) > max_ranges:
        walk_end = items[max_ranges][0]
        items = items[:max_ranges]
    # Normalized spans are sorted, disjoint and apart: the entries need no check.
    return SweepResult._from_spans(items, walk_end), Spans.of(start, walk_end)
