"""A reference model of touched_sweep(2): the documented semantics, in Python.

:class:`AddressSpace` holds what the kernel holds for one process: its VMAs
(with protection, sharing and tracking), which pages have a page table
entry, the touched marks, lazily freed pages and the ``GONE`` records.  Its
methods are the calls a process and a dumper make: ``mmap``, ``munmap``,
``mprotect``, ``mremap``, ``madvise``, stores, ``fork``, and the three
operations of the system call.  Each one follows
Documentation/userspace-api/touched_sweep.rst; the rule each line
implements is named next to it.  A call the kernel would refuse raises
:class:`ModelError` with the errno the kernel gives.

The model is page granular and keeps plain sets, so it is meant for windows
of a few thousand pages: it is an executable specification, not a fast one.
"""

from __future__ import annotations

import enum
import errno as errno_codes
import itertools
import mmap as _mmap
from collections.abc import Iterable, Iterator

import attrs

from pysweep import PAGE_SIZE, Range, RangeFlag, SweepResult

__all__ = ["AddressSpace", "Advice", "ModelError", "Vma"]

PROT_READ = _mmap.PROT_READ
PROT_WRITE = _mmap.PROT_WRITE


class ModelError(OSError):
    """The kernel would fail this call with ``errno``."""


class Advice(enum.Enum):
    """The ``madvise(2)`` advice the model knows."""

    DONTNEED = "dontneed"
    FREE = "free"


def _check_aligned(*values: int) -> None:
    for value in values:
        if value % PAGE_SIZE or value < 0:
            raise ValueError(f"{value:#x} is not a page-aligned address")


def _pages(start: int, end: int) -> range:
    return range(start, end, PAGE_SIZE)


@attrs.frozen(repr=False)
class Vma:
    """One mapping as the model sees it.

    ``origin`` names the ``mmap()`` call it comes from; ``offset`` is its
    start's offset in that mapping.  The model never merges VMAs, so its
    VMAs are the kernel's or pieces of them (the kernel merges untracked
    neighbours that came from one mapping again): whatever lies inside one
    model VMA lies inside one kernel VMA.
    """

    start: int
    end: int
    prot: int
    shared: bool
    tracked: bool
    origin: int
    offset: int = 0

    @property
    def writable(self) -> bool:
        return bool(self.prot & PROT_WRITE)

    def __repr__(self) -> str:
        # One line, so that a failing example in a test reads easily.
        prot = ("r" if self.prot & PROT_READ else "-") + ("w" if self.prot & PROT_WRITE else "-")
        kind = "shared" if self.shared else "private"
        tracked = " tracked" if self.tracked else ""
        return f"<Vma {self.start:#x}-{self.end:#x} {prot} {kind}{tracked} #{self.origin}+{self.offset:#x}>"

    def piece(self, start: int, end: int, **changes: object) -> Vma:
        """The part ``[start, end)`` of this VMA, with ``changes`` applied."""
        return attrs.evolve(self, start=start, end=end, offset=self.offset + start - self.start, **changes)  # type: ignore[arg-type]


def coalesce(pages: Iterable[tuple[int, RangeFlag]]) -> list[Range]:
    """Ranges from ``(page, flags)`` pairs in address order: one per run of equal flags."""
    ranges: list[Range] = []
    for page, flags in pages:
        last = ranges[-1] if ranges else None
        if last is not None and last.end == page and last.flags == flags:
            ranges[-1] = Range(last.start, page + PAGE_SIZE, flags)
        else:
            ranges.append(Range(page, page + PAGE_SIZE, flags))
    return ranges


@attrs.define
class AddressSpace:
    """One process's address space and its tracking state."""

    vmas: list[Vma] = attrs.field(factory=list)
    #: Pages with a page table entry (written at least once since mapped or zapped).
    present: set[int] = attrs.field(factory=set)
    #: Touched marks of tracked pages.
    marks: set[int] = attrs.field(factory=set)
    #: Pages lazily freed by MADV_FREE and not written since.
    lazyfree: set[int] = attrs.field(factory=set)
    #: Pages with an unreported GONE record.
    gone: set[int] = attrs.field(factory=set)
    _origins: Iterator[int] = attrs.field(factory=itertools.count, repr=False)

    # -- queries -----------------------------------------------------------

    def vma_at(self, address: int) -> Vma | None:
        """The VMA containing ``address``, if any."""
        for vma in self.vmas:
            if vma.start <= address < vma.end:
                return vma
        return None

    def mapped(self, start: int, end: int) -> bool:
        """Whether ``[start, end)`` has no hole."""
        return all(self.vma_at(page) is not None for page in _pages(start, end))

    def tracked_pages(self) -> set[int]:
        """Every tracked page."""
        return {page for vma in self.vmas if vma.tracked for page in _pages(vma.start, vma.end)}

    def mapped_pages(self) -> dict[int, tuple[int, bool]]:
        """Every mapped page, with its protection and whether it is shared."""
        return {page: (vma.prot, vma.shared) for vma in self.vmas for page in _pages(vma.start, vma.end)}

    # -- VMA surgery -------------------------------------------------------

    def _split(self, address: int) -> None:
        # Split the VMA around ``address`` so that a VMA starts there.
        vma = self.vma_at(address)
        if vma is None or vma.start == address:
            return
        index = self.vmas.index(vma)
        self.vmas[index : index + 1] = [vma.piece(vma.start, address), vma.piece(address, vma.end)]

    def _isolate(self, start: int, end: int) -> list[Vma]:
        # The VMAs of [start, end), split at its edges.
        self._split(start)
        self._split(end)
        return [vma for vma in self.vmas if start <= vma.start and vma.end <= end]

    def _replace(self, old: Vma, new: Vma) -> None:
        self.vmas[self.vmas.index(old)] = new

    def _unmap(self, start: int, end: int) -> None:
        # munmap(2) and mmap(MAP_FIXED): "The tracked range that was unmapped
        # or mapped over is reported GONE."
        for vma in self._isolate(start, end):
            pages = set(_pages(vma.start, vma.end))
            if vma.tracked:
                self.gone |= pages
            self.marks -= pages
            self.present -= pages
            self.lazyfree -= pages
            self.vmas.remove(vma)

    def _insert(self, vma: Vma) -> None:
        self.vmas.append(vma)
        self.vmas.sort(key=lambda v: v.start)

    # -- what the process does -----------------------------------------------

    def mmap(self, start: int, length: int, prot: int, *, shared: bool = False) -> None:
        """``mmap(start, length, prot, MAP_FIXED | MAP_ANONYMOUS | (MAP_SHARED or MAP_PRIVATE))``."""
        _check_aligned(start, length)
        if length == 0:
            raise ModelError(errno_codes.EINVAL, "mmap of length 0")
        self._unmap(start, start + length)
        # "A new mapping at that address is not tracked."
        self._insert(Vma(start, start + length, prot, shared, False, next(self._origins)))

    def munmap(self, start: int, length: int) -> None:
        """``munmap(start, length)``; holes in the range are fine."""
        _check_aligned(start, length)
        if length == 0:
            raise ModelError(errno_codes.EINVAL, "munmap of length 0")
        self._unmap(start, start + length)

    def mprotect(self, start: int, length: int, prot: int) -> None:
        """``mprotect(start, length, prot)`` over mapped memory.

        Splitting: "both parts stay tracked and the marks follow their
        pages".  Making pages writable marks nothing.
        """
        _check_aligned(start, length)
        if not self.mapped(start, start + length):
            raise ModelError(errno_codes.ENOMEM, "mprotect over a hole")
        for vma in self._isolate(start, start + length):
            self._replace(vma, attrs.evolve(vma, prot=prot))

    def write(self, start: int, length: int) -> None:
        """Store into every page of ``[start, start + length)``.

        "any store by any thread of the target" marks a tracked page; the
        store also gives the page a page table entry.
        """
        _check_aligned(start, length)
        for page in _pages(start, start + length):
            vma = self.vma_at(page)
            if vma is None or not vma.writable:
                raise ModelError(errno_codes.EFAULT, f"store to {page:#x}, which is not writable")
        for page in _pages(start, start + length):
            self.present.add(page)
            # A store dirties the entry: the page is no longer lazily freed.
            self.lazyfree.discard(page)
            if self._tracked(page):
                self.marks.add(page)

    def _tracked(self, page: int) -> bool:
        vma = self.vma_at(page)
        return vma is not None and vma.tracked

    def madvise(self, start: int, length: int, advice: Advice) -> None:
        """``madvise(start, length, advice)`` over mapped memory.

        "MADV_DONTNEED, MADV_FREE ... mark every page of the range that had
        a page table entry in this mapping."  DONTNEED drops the entries;
        FREE keeps them and leaves the pages lazily freed, which clearing
        sweeps report OVERREPORTED and do not clear until they are written.
        """
        _check_aligned(start, length)
        if not self.mapped(start, start + length):
            raise ModelError(errno_codes.ENOMEM, "madvise over a hole")
        if advice is Advice.FREE and any(vma.shared for vma in self._covering(start, start + length)):
            raise ModelError(errno_codes.EINVAL, "MADV_FREE on a shared mapping")
        for page in _pages(start, start + length):
            if page not in self.present:
                continue
            if self._tracked(page):
                self.marks.add(page)
            if advice is Advice.DONTNEED:
                self.present.discard(page)
                self.lazyfree.discard(page)
            else:
                self.lazyfree.add(page)

    def _covering(self, start: int, end: int) -> list[Vma]:
        return [vma for vma in self.vmas if vma.start < end and start < vma.end]

    def mremap(self, old: int, old_length: int, new_length: int, new: int, *, dontunmap: bool = False) -> None:
        """``mremap(old, old_length, new_length, MREMAP_MAYMOVE | MREMAP_FIXED [| MREMAP_DONTUNMAP], new)``.

        The old range must lie in one VMA and must not overlap the new one.
        "A move makes the new range tracked, with every page touched, and
        reports the old range GONE."  With DONTUNMAP "the old range keeps
        its VMA, and with it tracking, but its contents went to the new
        range: it is reported GONE once".
        """
        _check_aligned(old, old_length, new_length, new)
        if not old_length or not new_length:
            raise ModelError(errno_codes.EINVAL, "mremap with a zero length")
        if old < new + new_length and new < old + old_length:
            raise ModelError(errno_codes.EINVAL, "mremap onto an overlapping range")
        vma = self.vma_at(old)
        if vma is None or old + old_length > vma.end:
            raise ModelError(errno_codes.EFAULT, "mremap of a range outside one VMA")
        if dontunmap and (old_length != new_length or vma.shared):
            raise ModelError(errno_codes.EINVAL, "MREMAP_DONTUNMAP needs equal lengths and private memory")

        self._unmap(new, new + new_length)
        if old_length > new_length:
            self._unmap(old + new_length, old + old_length)
            old_length = new_length
        (source,) = self._isolate(old, old + old_length)
        shift = new - old
        moved_present = {page + shift for page in _pages(old, old + old_length) if page in self.present}
        moved_lazyfree = {page + shift for page in _pages(old, old + old_length) if page in self.lazyfree}
        old_pages = set(_pages(old, old + old_length))
        if dontunmap:
            if source.tracked:
                self.gone |= old_pages
            self.present -= old_pages
            self.lazyfree -= old_pages
        else:
            self._unmap(old, old + old_length)
        self._insert(attrs.evolve(source, start=new, end=new + new_length))
        self.present |= moved_present
        self.lazyfree |= moved_lazyfree
        if source.tracked:
            self.marks |= set(_pages(new, new + new_length))

    def fork(self) -> None:
        """``fork(2)``: "The parent is unaffected"; the child starts with nothing tracked.

        What the child writes, even to memory it shares with the parent, is
        not reported in the parent (writes through another mapping).
        """

    # -- the system call -----------------------------------------------------

    def track(self, start: int, end: int) -> None:
        """``TOUCHED_SWEEP_OP_TRACK``: holes give ENOMEM and change nothing;
        new pages start clean; tracked parts keep their marks."""
        _check_aligned(start, end)
        if not self.mapped(start, end):
            raise ModelError(errno_codes.ENOMEM, "track over a hole")
        for vma in self._isolate(start, end):
            if not vma.tracked:
                self.marks -= set(_pages(vma.start, vma.end))
                self._replace(vma, attrs.evolve(vma, tracked=True))

    def untrack(self, start: int, end: int) -> None:
        """``TOUCHED_SWEEP_OP_UNTRACK``: holes are skipped; marks are dropped, nothing is GONE."""
        _check_aligned(start, end)
        for vma in self._isolate(start, end):
            self.marks -= set(_pages(vma.start, vma.end))
            self._replace(vma, attrs.evolve(vma, tracked=False))

    def _flags(self, page: int, clear: bool) -> RangeFlag | None:
        # "GONE wins over TOUCHED"; OVERREPORTED "only from clearing sweeps".
        if page in self.gone:
            return RangeFlag.GONE
        if page in self.marks and self._tracked(page):
            if clear and page in self.lazyfree:
                return RangeFlag.TOUCHED | RangeFlag.OVERREPORTED
            return RangeFlag.TOUCHED
        return None

    def sweep(self, start: int, end: int, *, clear: bool = True, vec_len: int | None = None) -> SweepResult:
        """``TOUCHED_SWEEP_OP_SWEEP`` of ``[start, end)`` into ``vec_len`` entries (no limit if None).

        The result holds the entries of one call: sorted, clipped,
        disjoint and coalesced.  When they do not fit, ``walk_end`` is the
        start of the first entry left out, and nothing from there on is
        cleared; with ``vec_len`` 0 it is the first address that would have
        been reported.  A clearing sweep write-protects and clears what it
        reports, except lazily freed pages, forgets the GONE records it
        reports, and clears the marks under them.
        """
        _check_aligned(start, end)
        if end < start:
            raise ModelError(errno_codes.EINVAL, "window ends below its start")
        entries = coalesce((page, flags) for page in _pages(start, end) if (flags := self._flags(page, clear)) is not None)
        walk_end = end
        if vec_len is not None and len(entries) > vec_len:
            walk_end = entries[vec_len].start
            entries = entries[:vec_len]
        if clear:
            for page in _pages(start, walk_end):
                if page in self.gone:
                    self.gone.discard(page)
                    if page not in self.lazyfree:
                        self.marks.discard(page)
                elif page in self.marks and page not in self.lazyfree:
                    self.marks.discard(page)
        return SweepResult(entries, walk_end)
