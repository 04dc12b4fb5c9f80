"""pysweep: find the memory a process wrote since the last sweep.

A binding for the ``touched_sweep(2)`` system call.  A process is opted
into tracking over an address range with :func:`track`; :func:`sweep` then
reports the ranges written since the previous sweep, clearing the marks by
default.  The target is either a pid (a pidfd is opened for the call) or a
:class:`Target` wrapping a pidfd::

    with pysweep.Target.from_pid(pid) as target:
        target.track(start, end)
        ...
        for written in target.sweep(start, end).ranges:
            ...

Failures raise :class:`SweepError` subclasses (all ``OSError``).  On a
kernel without the call every function raises :class:`NotAvailableError`
without issuing it; :func:`probe` says why.
"""

from __future__ import annotations

import array
import contextlib
import itertools
import mmap
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

from pysweep._syscall import (
    ARGS_SIZE,
    ARGS_SIZE_VER0,
    NR_TOUCHED_SWEEP,
    BadAddressError,
    BadPidfdError,
    InvalidArgumentError,
    NotAvailableError,
    NotPermittedError,
    NotSupportedError,
    Op,
    ProbeResult,
    ProcessGoneError,
    RangeFlag,
    SweepError,
    SweepFlag,
    call,
    ffi,
    probe,
    require_available,
)

__version__ = "0.1.0"

__all__ = [
    "ARGS_SIZE",
    "ARGS_SIZE_VER0",
    "DEFAULT_BATCH",
    "NR_TOUCHED_SWEEP",
    "PAGE_SIZE",
    "BadAddressError",
    "BadPidfdError",
    "InvalidArgumentError",
    "NotAvailableError",
    "NotPermittedError",
    "NotSupportedError",
    "Op",
    "ProbeResult",
    "ProcessGoneError",
    "Range",
    "RangeFlag",
    "SweepError",
    "SweepFlag",
    "SweepResult",
    "Target",
    "buffer_range",
    "check_max_ranges",
    "check_window",
    "probe",
    "sweep",
    "track",
    "untrack",
]
__all__ += ["__version__"]

PAGE_SIZE: int = mmap.PAGESIZE
#: Ranges fetched per system call by :func:`sweep` (96 KiB of entries): enough
#: that the cost of each call is spread thin over a dense sweep.
DEFAULT_BATCH = 4096

_RANGE_FLAGS_MASK = int(RangeFlag.TOUCHED | RangeFlag.GONE | RangeFlag.OVERREPORTED)


def buffer_range(buffer: Any) -> tuple[int, int]:
    """The address range ``(start, end)`` of a Python buffer in this process.

    ``buffer`` is anything with the buffer protocol and contiguous memory: an
    ``mmap``, a ``bytearray``, a ``memoryview`` (of a slice too), an
    ``array``.  The range is exact; :meth:`Tracker.track` and :func:`track`
    take whole pages, so round it outwards, or map the memory with ``mmap``,
    whose buffer starts on a page.  The address holds while ``buffer`` lives
    and is not resized (a ``bytearray`` that grows may move).

    >>> import mmap, pysweep
    >>> m = mmap.mmap(-1, 4 * pysweep.PAGE_SIZE)
    >>> start, end = pysweep.buffer_range(m)
    >>> end - start == 4 * pysweep.PAGE_SIZE and start % pysweep.PAGE_SIZE == 0
    True
    """
    view = memoryview(buffer)
    if not view.c_contiguous:
        raise ValueError("buffer is not contiguous memory")
    if not view.nbytes:
        raise ValueError("buffer is empty")
    start = int(ffi.cast("uintptr_t", ffi.from_buffer(view)))
    return start, start + view.nbytes


def _require_address(name: str, value: object) -> None:
    # A 64-bit, page-aligned int: what every window and every range bound is.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value < 1 << 64:
        raise ValueError(f"{name} {value:#x} is not a 64-bit address")
    if value % PAGE_SIZE:
        raise ValueError(f"{name} {value:#x} is not page aligned (pages are {PAGE_SIZE} bytes)")


def check_window(start: object, end: object) -> None:
    """Raise unless ``[start, end)`` is a window every backend takes.

    ``start`` and ``end`` are ints (``TypeError``), 64-bit addresses that are
    page aligned, with ``start <= end`` (``ValueError``; an empty window is
    fine).  :class:`Tracker` checks this before any backend sees the window.
    """
    _require_address("start", start)
    _require_address("end", end)
    assert isinstance(start, int) and isinstance(end, int)
    if start > end:
        raise ValueError(f"window {start:#x}-{end:#x} is reversed: start is above end")


def check_max_ranges(max_ranges: object) -> None:
    """Raise unless ``max_ranges`` is ``None`` or an int of at least 1."""
    if max_ranges is None:
        return
    if isinstance(max_ranges, bool) or not isinstance(max_ranges, int):
        raise TypeError(f"max_ranges must be an int or None, not {type(max_ranges).__name__}")
    if max_ranges < 1:
        raise ValueError(f"max_ranges must be at least 1, not {max_ranges}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_address(instance: Any, attribute: attrs.Attribute[int], value: object) -> None:
    _require_address(attribute.name, value)


def _check_above_start(instance: Range, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= instance.start:
        raise ValueError(f"end {value:#x} is not above start {instance.start:#x}")


def _as_range_flags(value: object) -> object:
    # Anything that is not a known mask is passed on for the validator to reject.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0 and not value & ~_RANGE_FLAGS_MASK:
        return RangeFlag(value)
    return value


def _check_range_flags(instance: Any, attribute: attrs.Attribute[RangeFlag], value: object) -> None:
    if isinstance(value, RangeFlag):
        return
    if not _is_int(value):
        raise TypeError(f"flags must be an int, not {type(value).__name__}")
    raise ValueError(f"flags {value:#x} has bits outside the known mask {_RANGE_FLAGS_MASK:#x}")


@attrs.frozen
class Range:
    """One range ``[start, end)`` reported by a sweep, with the flags its pages share.

    ``start`` and ``end`` are page-aligned addresses with ``start < end``;
    ``flags`` is a :class:`RangeFlag` mask.  ``len()`` is the size in bytes.
    """

    start: int = attrs.field(validator=_check_address, repr=hex)
    end: int = attrs.field(validator=[_check_address, _check_above_start], repr=hex)
    flags: RangeFlag = attrs.field(default=RangeFlag.TOUCHED, converter=_as_range_flags, validator=_check_range_flags)

    @property
    def touched(self) -> bool:
        """The pages were written to."""
        return bool(self.flags & RangeFlag.TOUCHED)

    @property
    def gone(self) -> bool:
        """The range was tracked and has since been unmapped, moved or mapped over."""
        return bool(self.flags & RangeFlag.GONE)

    @property
    def overreported(self) -> bool:
        """The pages were reported conservatively and may be clean."""
        return bool(self.flags & RangeFlag.OVERREPORTED)

    @property
    def pages(self) -> int:
        """Number of pages in the range."""
        return (self.end - self.start) // PAGE_SIZE

    def __len__(self) -> int:
        return self.end - self.start

    def __contains__(self, address: object) -> bool:
        return _is_int(address) and self.start <= address < self.end  # type: ignore[operator]


# A result keeps the kernel's entries as they come, one u64 array of
# (start, end, flags) triples, so that a sweep costs one copy per call and no
# object per range.
_ENTRY_WORDS = 3
_ENTRY_SIZE = _ENTRY_WORDS * array.array("Q").itemsize
if ffi.sizeof("struct touched_range") != _ENTRY_SIZE:  # pragma: no cover - depends on the header
    raise ImportError(f"struct touched_range is not {_ENTRY_WORDS} u64s any more: pysweep needs updating")

# The flag values the kernel reports, as RangeFlag members, so that ranges
# built from trusted entries skip the enum call.
_RANGE_FLAGS: dict[int, RangeFlag] = {value: RangeFlag(value) for value in range(_RANGE_FLAGS_MASK + 1)}
# Range's slots, set directly for ranges from trusted entries: the validators
# are most of what a Range costs.
_set_start = Range.__dict__["start"].__set__
_set_end = Range.__dict__["end"].__set__
_set_flags = Range.__dict__["flags"].__set__


def _trusted_range(start: int, end: int, flags: int) -> Range:
    # A Range from entries that are page aligned, with start below end, by
    # construction; flags outside the mask still meet the validators.
    known = _RANGE_FLAGS.get(flags)
    if known is None:
        return Range(start, end, flags)
    found: Range = object.__new__(Range)
    _set_start(found, start)
    _set_end(found, end)
    _set_flags(found, known)
    return found


def _check_entries(instance: Any, attribute: attrs.Attribute[array.array[int]], value: object) -> None:
    if not isinstance(value, array.array) or value.typecode != "Q":
        raise TypeError(f"entries must be an array of u64 ('Q'), not {type(value).__name__}")
    if len(value) % _ENTRY_WORDS:
        raise ValueError(f"{len(value)} entry words are not whole (start, end, flags) triples")


@attrs.frozen(init=False, repr=False)
class SweepResult:
    """The outcome of :func:`sweep`: the reported ranges in address order, and ``walk_end``.

    ``walk_end`` is where the sweep stopped: the window's end when it was
    swept whole, otherwise the start to resume from (see ``max_ranges``).

    The ranges are kept as the kernel reports them, an array of
    ``(start, end, flags)`` entries, and read without an object per range:
    ``len(result)`` counts them, iterating yields ``(start, end, flags)``
    tuples (``flags`` a plain int of :class:`RangeFlag` bits),
    :meth:`spans` yields ``(start, end)``, :attr:`pages` and
    :attr:`touched_pages` count pages, and :meth:`select` keeps the ranges
    with or without some flags.  :attr:`ranges` gives :class:`Range`
    objects, built on first use and kept.

    ``SweepResult(ranges, walk_end)`` takes :class:`Range` objects (each one
    validated when it was made) and a page-aligned ``walk_end``.
    """

    _entries: array.array[int] = attrs.field(eq=bytes, validator=_check_entries)
    walk_end: int = attrs.field(validator=_check_address)
    _ranges: tuple[Range, ...] | None = attrs.field(init=False, default=None, eq=False)

    def __init__(self, ranges: Iterable[Range], walk_end: int) -> None:
        given = tuple(ranges)
        for found in given:
            if not isinstance(found, Range):
                raise TypeError(f"ranges must be Range objects, not {type(found).__name__}")
        entries = array.array("Q", itertools.chain.from_iterable((r.start, r.end, r.flags) for r in given))
        self.__attrs_init__(entries, walk_end)
        object.__setattr__(self, "_ranges", given)

    @classmethod
    def _from_entries(cls, entries: array.array[int], walk_end: int) -> SweepResult:
        """A result over ``entries``, which it takes over: triples that are
        page aligned, sorted and disjoint by construction (from the kernel or
        a backend), so they are not checked one by one."""
        result = cls.__new__(cls)
        result.__attrs_init__(entries, walk_end)
        return result

    @classmethod
    def _from_spans(cls, spans: Iterable[tuple[int, int]], walk_end: int, flags: int = RangeFlag.TOUCHED) -> SweepResult:
        """A result of ``(start, end)`` spans, all with ``flags``, trusted as by :meth:`_from_entries`."""
        suffix = (int(flags),)
        entries = array.array("Q", itertools.chain.from_iterable(map(tuple.__add__, spans, itertools.repeat(suffix))))
        return cls._from_entries(entries, walk_end)

    def __len__(self) -> int:
        return len(self._entries) // _ENTRY_WORDS

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        entries = self._entries
        return zip(entries[0::_ENTRY_WORDS], entries[1::_ENTRY_WORDS], entries[2::_ENTRY_WORDS], strict=True)

    def spans(self) -> Iterator[tuple[int, int]]:
        """The ``(start, end)`` of every range, in address order."""
        entries = self._entries
        return zip(entries[0::_ENTRY_WORDS], entries[1::_ENTRY_WORDS], strict=True)

    @property
    def ranges(self) -> tuple[Range, ...]:
        """The ranges as :class:`Range` objects, built on first use."""
        built = self._ranges
        if built is None:
            built = tuple(itertools.starmap(_trusted_range, self))
            object.__setattr__(self, "_ranges", built)
        return built

    @property
    def pages(self) -> int:
        """Number of pages in all ranges."""
        entries = self._entries
        return (sum(entries[1::_ENTRY_WORDS]) - sum(entries[0::_ENTRY_WORDS])) // PAGE_SIZE

    @property
    def touched_pages(self) -> int:
        """Number of pages in the ranges to copy again: ``TOUCHED`` and not ``GONE``."""
        return self.select(having=RangeFlag.TOUCHED, lacking=RangeFlag.GONE).pages

    def select(self, *, having: int = 0, lacking: int = 0) -> SweepResult:
        """The same sweep with only the ranges whose flags have every bit of
        ``having`` and none of ``lacking``; ``walk_end`` is kept."""
        if not _is_int(having) or not _is_int(lacking):
            raise TypeError("having and lacking must be RangeFlag masks")
        entries = self._entries
        flags = entries[2::_ENTRY_WORDS]
        present = set(flags)
        wanted = {value for value in present if value & having == having and not value & lacking}
        if wanted == present:
            return self
        kept = array.array("Q")
        if wanted:
            triples = zip(entries[0::_ENTRY_WORDS], entries[1::_ENTRY_WORDS], flags, strict=True)
            kept.extend(itertools.chain.from_iterable(itertools.compress(triples, map(wanted.__contains__, flags))))
        return SweepResult._from_entries(kept, self.walk_end)

    def __repr__(self) -> str:
        return f"SweepResult(ranges={self.ranges!r}, walk_end={self.walk_end:#x})"

    def __reduce__(self) -> tuple[Callable[[array.array[int], int], SweepResult], tuple[array.array[int], int]]:
        # The entries and walk_end make the value; Range objects built for
        # .ranges stay behind.
        return SweepResult._from_entries, (self._entries, self.walk_end)


def _append_joined(entries: array.array[int], raw: memoryview, cursor: int) -> None:
    """Append the ``struct touched_range`` entries in ``raw`` (bytes the
    kernel wrote from ``cursor`` on) to ``entries``.

    The kernel coalesces the entries of one call, not across calls: the
    first entry is joined to the last one collected when they meet with
    equal flags.
    """
    start, end, flags = raw[:_ENTRY_SIZE].cast("Q")
    if start < cursor:
        raise RuntimeError(f"touched_sweep reported a range at {start:#x}, below where the call started ({cursor:#x})")
    if entries and entries[-2] == start and entries[-1] == flags:
        entries[-2] = end
        raw = raw[_ENTRY_SIZE:]
    entries.frombytes(raw)


_new_vec = ffi.new_allocator(should_clear_after_alloc=False)


def _pid_of_pidfd(pidfd: int) -> int | None:
    # Only for messages: the pid the kernel shows for a pidfd, if any.
    try:
        with open(f"/proc/self/fdinfo/{pidfd}") as info:
            for line in info:
                if line.startswith("Pid:"):
                    pid = int(line.split()[1])
                    return pid if pid > 0 else None
    except (OSError, ValueError, IndexError):
        pass
    return None


class Target:
    """A process named by a pidfd.

    :meth:`from_pid` opens a pidfd that :meth:`close` (or leaving the
    ``with`` block) closes; :meth:`from_pidfd` borrows one the caller keeps
    owning (the constructor takes a pidfd and says so with ``owned``).
    Once opened, the pidfd keeps naming the same process even if its pid is
    reused.
    """

    __slots__ = ("_owned", "_pid", "_pidfd")

    def __init__(self, pidfd: int, *, pid: int | None = None, owned: bool = False) -> None:
        self._pidfd: int | None = pidfd
        self._pid = pid
        self._owned = owned

    @classmethod
    def from_pid(cls, pid: int) -> Target:
        """Open a pidfd for ``pid`` (``os.pidfd_open``'s errors propagate)."""
        return cls(os.pidfd_open(pid), pid=pid, owned=True)

    @classmethod
    def from_pidfd(cls, pidfd: int) -> Target:
        """Use an existing pidfd, which stays open when this target is closed."""
        return cls(pidfd, pid=_pid_of_pidfd(pidfd), owned=False)

    @property
    def pid(self) -> int | None:
        """The pid, when known."""
        return self._pid

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._pidfd is None

    def fileno(self) -> int:
        """The pidfd."""
        if self._pidfd is None:
            raise ValueError("operation on a closed Target")
        return self._pidfd

    def close(self) -> None:
        """Close the pidfd if this target opened it."""
        pidfd, self._pidfd = self._pidfd, None
        if pidfd is not None and self._owned:
            os.close(pidfd)

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._pidfd is None else f"pidfd={self._pidfd}"
        return f"<Target pid={self._pid} {state}>"

    def _describe(self) -> str:
        return f"pid {self._pid}" if self._pid is not None else f"pidfd {self._pidfd}"

    def _call(self, op: Op, start: int, end: int, *, flags: int = 0, vec: int = 0, vec_len: int = 0) -> tuple[int, int]:
        require_available(op, start, end, self._describe())
        return call(self.fileno(), op=op, flags=flags, start=start, end=end, vec=vec, vec_len=vec_len, target=self._describe())

    def track(self, start: int, end: int) -> None:
        """Opt ``[start, end)`` of the target into tracking."""
        self._call(Op.TRACK, start, end)

    def untrack(self, start: int, end: int) -> None:
        """Opt ``[start, end)`` of the target out of tracking."""
        self._call(Op.UNTRACK, start, end)

    def sweep(
        self,
        start: int,
        end: int,
        *,
        clear: bool = True,
        max_ranges: int | None = None,
        batch: int = DEFAULT_BATCH,
    ) -> SweepResult:
        """Report the ranges of ``[start, end)`` written since the last clearing sweep.

        ``clear`` clears the marks of what is reported (and write-protects
        those pages again).  The window is swept in calls of up to ``batch``
        ranges each, resuming at ``walk_end``, until it is done or
        ``max_ranges`` ranges have been collected; the result's ``walk_end``
        is then where to resume, and marks past it are left as they are.
        Ranges that meet at a call boundary with equal flags are joined.
        """
        check_max_ranges(max_ranges)
        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch}")
        flags = int(SweepFlag.CLEAR) if clear else 0
        vec_len = batch if max_ranges is None else min(batch, max_ranges)
        # Not zeroed: only the entries a call reports are read.
        vec = _new_vec("struct touched_range[]", vec_len)
        vec_address = int(ffi.cast("uintptr_t", vec))
        entries: array.array[int] = array.array("Q")
        cursor = start
        while True:
            room = vec_len if max_ranges is None else min(vec_len, max_ranges - len(entries) // _ENTRY_WORDS)
            count, walk_end = self._call(Op.SWEEP, cursor, end, flags=flags, vec=vec_address, vec_len=room)
            if count > room:
                raise RuntimeError(f"touched_sweep reported {count} ranges into room for {room}")
            if count:
                _append_joined(entries, memoryview(ffi.buffer(vec, count * _ENTRY_SIZE)), cursor)
            if walk_end == end or (max_ranges is not None and len(entries) // _ENTRY_WORDS >= max_ranges):
                return SweepResult._from_entries(entries, walk_end)
            if not cursor < walk_end < end:
                raise RuntimeError(f"touched_sweep stopped at {walk_end:#x}, outside ({cursor:#x}, {end:#x})")
            cursor = walk_end


def _open(op: Op, target: Target | int, start: int, end: int) -> contextlib.AbstractContextManager[Target]:
    # An int is always a pid; a pidfd has to come wrapped in a Target.  A
    # missing call is refused before any pidfd is opened.
    if isinstance(target, Target):
        require_available(op, start, end, target._describe())
        return contextlib.nullcontext(target)
    if not _is_int(target):
        raise TypeError(f"target must be a pid or a Target, not {type(target).__name__}")
    require_available(op, start, end, f"pid {target}")
    return Target.from_pid(target)


def track(target: Target | int, start: int, end: int) -> None:
    """Opt ``[start, end)`` of ``target`` (a pid or a :class:`Target`) into tracking."""
    with _open(Op.TRACK, target, start, end) as opened:
        opened.track(start, end)


def untrack(target: Target | int, start: int, end: int) -> None:
    """Opt ``[start, end)`` of ``target`` (a pid or a :class:`Target`) out of tracking."""
    with _open(Op.UNTRACK, target, start, end) as opened:
        opened.untrack(start, end)


def sweep(
    target: Target | int,
    start: int,
    end: int,
    *,
    clear: bool = True,
    max_ranges: int | None = None,
    batch: int = DEFAULT_BATCH,
) -> SweepResult:
    """Sweep ``[start, end)`` of ``target`` (a pid or a :class:`Target`); see :meth:`Target.sweep`."""
    with _open(Op.SWEEP, target, start, end) as opened:
        return opened.sweep(start, end, clear=clear, max_ranges=max_ranges, batch=batch)


# The backend interface builds on the types above.
from pysweep._spans import BackendError  # noqa: E402
from pysweep.tracker import (  # noqa: E402
    Backend,
    BackendUnavailableError,
    Guarantees,
    Tracker,
    available_backends,
    backend_names,
)

__all__ += [
    "Backend",
    "BackendError",
    "BackendUnavailableError",
    "Guarantees",
    "Tracker",
    "available_backends",
    "backend_names",
]
