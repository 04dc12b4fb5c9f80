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

import contextlib
import mmap
import os
from collections.abc import Iterable
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
    "probe",
    "sweep",
    "track",
    "untrack",
]

PAGE_SIZE: int = mmap.PAGESIZE
#: Ranges fetched per system call by :func:`sweep`.
DEFAULT_BATCH = 256

_RANGE_FLAGS_MASK = int(RangeFlag.TOUCHED | RangeFlag.GONE | RangeFlag.OVERREPORTED)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_address(instance: Any, attribute: attrs.Attribute[int], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
    if not 0 <= value < 1 << 64:
        raise ValueError(f"{attribute.name} {value:#x} is not a 64-bit address")
    if value % PAGE_SIZE:
        raise ValueError(f"{attribute.name} {value:#x} is not page aligned")


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

    start: int = attrs.field(validator=_check_address)
    end: int = attrs.field(validator=[_check_address, _check_above_start])
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


def _as_tuple(ranges: Iterable[Range]) -> tuple[Range, ...]:
    return tuple(ranges)


@attrs.frozen
class SweepResult:
    """The outcome of :func:`sweep`.

    ``ranges``: the reported ranges in address order.  ``walk_end``: where
    the sweep stopped; the window's end when it was swept whole, otherwise
    the start to resume from (see ``max_ranges``).
    """

    ranges: tuple[Range, ...] = attrs.field(
        converter=_as_tuple,
        validator=attrs.validators.deep_iterable(attrs.validators.instance_of(Range)),
    )
    walk_end: int = attrs.field(validator=_check_address)

    @property
    def pages(self) -> int:
        """Number of pages in all ranges."""
        return sum(r.pages for r in self.ranges)


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
        return call(
            self.fileno(), op=op, flags=flags, start=start, end=end, vec=vec, vec_len=vec_len, target=self._describe()
        )

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
        if max_ranges is not None and max_ranges < 1:
            raise ValueError(f"max_ranges must be at least 1, not {max_ranges}")
        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch}")
        flags = int(SweepFlag.CLEAR) if clear else 0
        vec = ffi.new("struct touched_range[]", batch)
        vec_address = int(ffi.cast("uintptr_t", vec))
        ranges: list[Range] = []
        cursor = start
        while True:
            room = batch if max_ranges is None else min(batch, max_ranges - len(ranges))
            count, walk_end = self._call(Op.SWEEP, cursor, end, flags=flags, vec=vec_address, vec_len=room)
            if count > room:
                raise RuntimeError(f"touched_sweep reported {count} ranges into room for {room}")
            for entry in vec[0:count]:
                found = Range(entry.start, entry.end, entry.flags)
                last = ranges[-1] if ranges else None
                if last is not None and last.end == found.start and last.flags == found.flags:
                    ranges[-1] = Range(last.start, found.end, last.flags)
                else:
                    ranges.append(found)
            if walk_end == end or (max_ranges is not None and len(ranges) >= max_ranges):
                return SweepResult(ranges, walk_end)
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
    "BackendUnavailableError",
    "Guarantees",
    "Tracker",
    "available_backends",
    "backend_names",
]
