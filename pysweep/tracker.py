"""One interface over the three ways Linux can tell which memory was written.

A :class:`Tracker` watches one process through one backend:

``touched_sweep``
    The ``touched_sweep(2)`` system call of this project.  Any process the
    caller may ptrace; the sweep costs time in proportion to what was
    written; test-and-clear is atomic; unmapped and moved ranges are
    reported ``GONE``.
``pagemap_scan``
    ``PAGEMAP_SCAN`` over memory registered with userfaultfd asynchronous
    write-protection (Linux 6.7+).  The calling process only, since the
    userfaultfd must be opened by the process it watches.  Atomic; costs time
    in proportion to the memory scanned.
``soft_dirty``
    ``/proc/PID/clear_refs`` and bit 55 of ``/proc/PID/pagemap``.  Any
    process the caller may ptrace, but reading and clearing are two steps,
    so it is exact only while the target is stopped; costs time in
    proportion to the memory tracked, and every clear applies to the whole
    address space.

Every backend returns the same :class:`~pysweep.SweepResult` for the same
workload, within the limits each one states in :attr:`Backend.guarantees`.
``Tracker(pid)`` picks the first backend that works (``auto``);
``Tracker(pid, backend="soft_dirty")`` forces one::

    with pysweep.Tracker(pid) as tracker:
        tracker.track(start, end)
        ...
        for written in tracker.sweep(start, end).ranges:
            ...
"""

from __future__ import annotations

import abc
import contextlib
import errno as errno_codes
import os
from collections.abc import Callable
from typing import ClassVar

import attrs

from pysweep import DEFAULT_BATCH, SweepResult, Target, check_max_ranges, check_window
from pysweep._syscall import SweepError, probe
from pysweep.maps import Mapping, read_maps, untrackable_reason

__all__ = [
    "AUTO_ORDER",
    "Backend",
    "BackendUnavailableError",
    "Guarantees",
    "TouchedSweepBackend",
    "TrackedMappings",
    "Tracker",
    "available_backends",
    "backend_names",
    "register_backend",
    "unregister_backend",
]


@attrs.frozen
class Guarantees:
    """What a backend promises, for callers and for tests that compare backends.

    ``remote``: it can watch a process other than the caller.
    ``atomic``: a clearing sweep tests and clears each page atomically, so a
    target may keep running across sweeps without losing writes.
    ``range_clear``: clearing applies to the swept window only (otherwise the
    backend must read the whole tracked set to clear any of it).
    ``reports_gone``: unmapped, moved and mapped-over tracked ranges are
    reported ``GONE``.
    ``reports_zaps``: ``MADV_DONTNEED`` and similar zaps mark the pages.
    ``follows_mremap``: a moved tracked range stays tracked at its new
    address, with every page touched.
    ``reports_new_mappings``: a new mapping placed in a tracked range is
    reported touched in full until the next clear (soft-dirty's rule).
    ``cost``: one line on what a sweep costs.
    ``persistent``: the tracking state lives in the kernel and outlives the
    :class:`Tracker` (a later process can sweep what an earlier one tracked).
    """

    remote: bool
    atomic: bool
    range_clear: bool
    reports_gone: bool
    reports_zaps: bool
    follows_mremap: bool
    reports_new_mappings: bool
    cost: str
    persistent: bool = False


class BackendUnavailableError(SweepError):
    """The backend cannot work here; the message says why.

    ``errno`` is ``ENOSYS`` when the kernel lacks the mechanism, ``EPERM``
    or ``EACCES`` when the caller lacks a permission, and ``EOPNOTSUPP``
    when the backend cannot watch this kind of target (for instance
    ``pagemap_scan`` and another process).  From ``auto``, ``reasons``
    maps every backend tried to why it does not work, and the message
    gives one line to each.  ``pid`` is the target's, when known.
    """

    def __init__(
        self, errno: int, reason: str, *, backend: str = "", target: str | None = None, reasons: dict[str, str] | None = None
    ) -> None:
        super().__init__(errno, reason, target=target)
        self.backend = backend
        self.reasons = {} if reasons is None else reasons

    def __str__(self) -> str:
        return f"{self.backend} backend: {self.strerror}" if self.backend else str(self.strerror)


class Backend(abc.ABC):
    """A way of finding written memory in one target process.

    Subclasses set :attr:`name` and :attr:`guarantees`, check in their
    constructor that they work on this kernel for this target (raising
    :class:`BackendUnavailableError` if not), and implement the four methods.
    They may assume what :class:`Tracker` checks first: a window that
    passes :func:`check_window` and a ``max_ranges`` that passes
    :func:`check_max_ranges`.
    """

    name: ClassVar[str]
    guarantees: ClassVar[Guarantees]

    def __init__(self, pid: int) -> None:
        self.pid = pid

    @abc.abstractmethod
    def track(self, start: int, end: int) -> None:
        """Opt ``[start, end)`` in; its pages start clean, already tracked parts keep their marks."""

    @abc.abstractmethod
    def untrack(self, start: int, end: int) -> None:
        """Opt ``[start, end)`` out and drop its marks."""

    @abc.abstractmethod
    def sweep(self, start: int, end: int, *, clear: bool = True, max_ranges: int | None = None) -> SweepResult:
        """Report the written ranges of ``[start, end)``, as :meth:`pysweep.Target.sweep` does."""

    def close(self) -> None:  # noqa: B027 - a default, not an abstract method
        """Release what the backend holds (file descriptors, registrations)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pid={self.pid}>"


class TouchedSweepBackend(Backend):
    """The ``touched_sweep(2)`` system call (needs the patched kernel)."""

    name = "touched_sweep"
    guarantees = Guarantees(
        remote=True,
        atomic=True,
        range_clear=True,
        reports_gone=True,
        reports_zaps=True,
        follows_mremap=True,
        reports_new_mappings=False,
        cost="time in proportion to the touched VMAs and pages, not to the memory tracked",
        persistent=True,
    )

    def __init__(self, pid: int, *, target: Target | None = None, batch: int = DEFAULT_BATCH) -> None:
        super().__init__(pid)
        found = probe()
        if not found.available:
            raise BackendUnavailableError(errno_codes.ENOSYS, found.reason, backend=self.name)
        if not found.implemented:
            raise BackendUnavailableError(errno_codes.EOPNOTSUPP, found.reason, backend=self.name)
        self._owned = target is None
        self._target = Target.from_pid(pid) if target is None else target
        self._batch = batch

    def track(self, start: int, end: int) -> None:
        self._target.track(start, end)

    def untrack(self, start: int, end: int) -> None:
        self._target.untrack(start, end)

    def sweep(self, start: int, end: int, *, clear: bool = True, max_ranges: int | None = None) -> SweepResult:
        return self._target.sweep(start, end, clear=clear, max_ranges=max_ranges, batch=self._batch)

    def close(self) -> None:
        if self._owned:
            self._target.close()


BackendFactory = Callable[[int], Backend]

_REGISTRY: dict[str, BackendFactory] = {TouchedSweepBackend.name: TouchedSweepBackend}

#: The order ``auto`` tries backends in: the exact and cheap one first.
AUTO_ORDER: tuple[str, ...] = ("touched_sweep", "pagemap_scan", "soft_dirty")


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``factory(pid)`` available as backend ``name``."""
    _REGISTRY[name] = factory


def unregister_backend(name: str) -> None:
    """Forget backend ``name`` (``KeyError`` if unknown)."""
    del _REGISTRY[name]


def _load_mainline_backends() -> None:
    # The mainline backends live in their own modules; importing them
    # registers them.  They are optional: a build without them still has
    # the touched_sweep backend.
    for module in ("pysweep.pagemap_scan", "pysweep.soft_dirty"):
        with contextlib.suppress(ImportError):
            __import__(module)


def backend_names() -> tuple[str, ...]:
    """Every known backend, in ``auto`` order."""
    _load_mainline_backends()
    known = [name for name in AUTO_ORDER if name in _REGISTRY]
    return tuple(known + sorted(set(_REGISTRY) - set(known)))


def _pid_of(target: int | Target | None) -> tuple[int, Target | None]:
    if target is None:
        return os.getpid(), None
    if isinstance(target, Target):
        if target.pid is None:
            raise ValueError("a Target without a known pid cannot be used with a Tracker")
        return target.pid, target
    if isinstance(target, bool) or not isinstance(target, int):
        raise TypeError(f"target must be a pid or a Target, not {type(target).__name__}")
    return target, None


def _open_backend(name: str, pid: int, target: Target | None) -> Backend:
    _load_mainline_backends()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(backend_names())}, auto") from None
    if name == TouchedSweepBackend.name:
        return TouchedSweepBackend(pid, target=target)
    return factory(pid)


def available_backends(target: int | Target | None = None) -> dict[str, BackendUnavailableError | None]:
    """For each backend, ``None`` if it works for ``target`` here, else why not."""
    pid, wrapped = _pid_of(target)
    found: dict[str, BackendUnavailableError | None] = {}
    for name in backend_names():
        try:
            _open_backend(name, pid, wrapped).close()
        except BackendUnavailableError as exc:
            found[name] = exc
        else:
            found[name] = None
    return found


# Why the kernel refused to track a mapping that looked trackable.
_TRACK_ERRNO_REASONS = {
    errno_codes.EINVAL: "the kernel refused it (EINVAL): not eligible for tracking",
    errno_codes.ENOMEM: "the kernel refused it (ENOMEM): unmapped meanwhile, or could not be split",
    errno_codes.EPERM: "the kernel refused it (EPERM): sealed, or not permitted",
}


@attrs.frozen
class TrackedMappings:
    """What :meth:`Tracker.track_mappings` did: the mappings it tracked (of
    which ``already`` were tracked before), and those it skipped, each with
    the reason."""

    tracked: tuple[Mapping, ...]
    already: int
    skipped: tuple[tuple[Mapping, str], ...]

    @property
    def tracked_bytes(self) -> int:
        return sum(len(m) for m in self.tracked)


class Tracker:
    """Watch the writes of one process through one backend.

    ``target`` is a pid, a :class:`~pysweep.Target` or ``None`` for the
    calling process.  ``backend`` is a name from :func:`backend_names` or
    ``"auto"``, which takes the first backend in :data:`AUTO_ORDER` that
    works for this target and raises :class:`BackendUnavailableError` with
    every backend's reason if none does.
    """

    def __init__(self, target: int | Target | None = None, *, backend: str = "auto") -> None:
        pid, wrapped = _pid_of(target)
        self.pid = pid
        if backend != "auto":
            try:
                self.backend = _open_backend(backend, pid, wrapped)
            except BackendUnavailableError as exc:
                exc.target = exc.target or f"pid {pid}"
                raise
            return
        reasons: dict[str, str] = {}
        for name in backend_names():
            try:
                self.backend = _open_backend(name, pid, wrapped)
            except BackendUnavailableError as exc:
                reasons[name] = str(exc.strerror)
            else:
                return
        width = max(map(len, reasons), default=0) + 1
        lines = "".join(f"\n  {f'{name}:':<{width}} {why}" for name, why in reasons.items())
        raise BackendUnavailableError(
            errno_codes.ENOSYS, f"no backend works for pid {pid}:{lines}", backend="auto", target=f"pid {pid}", reasons=reasons
        )

    @property
    def name(self) -> str:
        """The backend's name."""
        return self.backend.name

    @property
    def guarantees(self) -> Guarantees:
        """The backend's :class:`Guarantees`."""
        return self.backend.guarantees

    def track(self, start: int, end: int) -> None:
        """Opt ``[start, end)`` into tracking; see :meth:`Backend.track`.

        Every method checks its window with :func:`check_window` first
        (``TypeError`` or ``ValueError``), whatever the backend.
        """
        check_window(start, end)
        self.backend.track(start, end)

    def untrack(self, start: int, end: int) -> None:
        """Opt ``[start, end)`` out of tracking."""
        check_window(start, end)
        self.backend.untrack(start, end)

    def track_mappings(self, *, read_only: bool = False) -> TrackedMappings:
        """Track every mapping of the process that can be tracked, each on its own.

        The rules are :func:`pysweep.maps.untrackable_reason`'s (read-only
        mappings too with ``read_only``); a mapping the kernel refuses
        (``EINVAL``, ``ENOMEM``, ``EPERM``) is skipped with the reason.  If
        nothing could be tracked because the kernel refused it all, that
        first refusal is raised.
        """
        tracked: list[Mapping] = []
        skipped: list[tuple[Mapping, str]] = []
        already = 0
        refusals: list[OSError] = []
        for mapping in read_maps(self.pid, with_flags=True):
            reason = untrackable_reason(mapping, read_only=read_only)
            if reason is not None:
                skipped.append((mapping, reason))
                continue
            try:
                self.track(mapping.start, mapping.end)
            except OSError as exc:
                if exc.errno not in _TRACK_ERRNO_REASONS or isinstance(exc, BackendUnavailableError):
                    raise
                refusals.append(exc)
                skipped.append((mapping, _TRACK_ERRNO_REASONS[exc.errno]))
                continue
            tracked.append(mapping)
            already += mapping.tracked
        if not tracked and refusals:
            raise refusals[0]
        return TrackedMappings(tuple(tracked), already, tuple(skipped))

    def sweep(self, start: int, end: int, *, clear: bool = True, max_ranges: int | None = None) -> SweepResult:
        """Report, and with ``clear`` clear, the written ranges of ``[start, end)``.

        ``max_ranges`` (``None`` or at least 1, :func:`check_max_ranges`)
        stops the sweep after that many ranges; the result's ``walk_end``
        says where to resume.
        """
        check_window(start, end)
        check_max_ranges(max_ranges)
        return self.backend.sweep(start, end, clear=clear, max_ranges=max_ranges)

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Tracker pid={self.pid} backend={self.name}>"
