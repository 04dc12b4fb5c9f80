"""The touched_sweep(2) system call itself: constants, errors, one raw call, the probe.

:func:`call` sends exactly the argument structure it is given and maps a
failure to a :class:`SweepError` subclass; it checks nothing itself, so that
the kernel's own validation can be exercised with hostile arguments.
:func:`probe` finds out, once per process, whether the running kernel has
the call at all.
"""

from __future__ import annotations

import enum
import errno as errno_codes
import os
import threading

import attrs


def not_built(module: str) -> ImportError:
    """The error for a missing compiled module, saying which copy of pysweep lacks it."""
    here = os.path.dirname(os.path.abspath(__file__))
    return ImportError(
        f"{module} is not built in {here}.\n"
        "If that is a source tree, it comes before any installed copy on sys.path (pytest and\n"
        "`python -m` put it there).  Build it in place with `pip install -e .` (or\n"
        "`python3 setup.py build_ext --inplace`), or run from another directory.\n"
        "Building needs gcc and the Python headers (Debian: apt install gcc python3-dev)."
    )


try:
    from pysweep._native import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the build
    raise not_built("pysweep._native") from exc

__all__ = [
    "ARGS_SIZE",
    "ARGS_SIZE_VER0",
    "NR_TOUCHED_SWEEP",
    "BadAddressError",
    "BadPidfdError",
    "InvalidArgumentError",
    "NotAvailableError",
    "NotPermittedError",
    "NotSupportedError",
    "Op",
    "ProbeResult",
    "ProcessGoneError",
    "RangeFlag",
    "SweepError",
    "SweepFlag",
    "call",
    "error_for",
    "ffi",
    "lib",
    "probe",
    "require_available",
]

#: The number the binding issues (463 unless <asm/unistd.h> says otherwise).
NR_TOUCHED_SWEEP: int = lib.PYSWEEP_NR_TOUCHED_SWEEP
#: sizeof(struct touched_sweep_args) in the header the binding was built with.
ARGS_SIZE: int = ffi.sizeof("struct touched_sweep_args")
#: Size of the first published struct; the smallest size the kernel accepts.
ARGS_SIZE_VER0: int = lib.TOUCHED_SWEEP_ARGS_SIZE_VER0

# call() zero-fills its buffer up to an explicit size this large, so that an
# oversized struct carries defined (zero) trailing bytes.
_MAX_ZERO_FILL = 1 << 16


class Op(enum.IntEnum):
    """``touched_sweep_args.op``."""

    TRACK = lib.TOUCHED_SWEEP_OP_TRACK
    UNTRACK = lib.TOUCHED_SWEEP_OP_UNTRACK
    SWEEP = lib.TOUCHED_SWEEP_OP_SWEEP


class SweepFlag(enum.IntFlag):
    """``touched_sweep_args.flags`` (valid with :attr:`Op.SWEEP` only)."""

    CLEAR = lib.TOUCHED_SWEEP_CLEAR


class RangeFlag(enum.IntFlag):
    """``touched_range.flags``."""

    TOUCHED = lib.TOUCHED_RANGE_TOUCHED
    GONE = lib.TOUCHED_RANGE_GONE
    OVERREPORTED = lib.TOUCHED_RANGE_OVERREPORTED


def _op_name(op: int) -> str:
    try:
        return Op(op).name
    except ValueError:
        return f"op {op:#x}"


class SweepError(OSError):
    """touched_sweep() failed.

    ``errno`` and ``strerror`` are those of the failure; ``op``, ``start``,
    ``end`` and ``target`` (``"pid N"`` or ``"pidfd N"``) describe the call,
    and the message names them all, e.g.
    ``touched_sweep(SWEEP, 0x1000-0x3000) on pid 123: Invalid argument``.
    Errnos without a subclass of their own are raised as this class.
    """

    def __init__(
        self,
        errno: int,
        strerror: str | None = None,
        *,
        op: str | None = None,
        start: int | None = None,
        end: int | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(errno, os.strerror(errno) if strerror is None else strerror)
        self.op = op
        self.start = start
        self.end = end
        self.target = target

    @property
    def pid(self) -> int | None:
        """The target's pid, if the failed call named one (``target`` is ``"pid N"``)."""
        kind, _, number = (self.target or "").partition(" ")
        return int(number) if kind == "pid" and number.isdigit() else None

    def __str__(self) -> str:
        head = "touched_sweep"
        if self.op is not None:
            window = "" if self.start is None or self.end is None else f", {self.start:#x}-{self.end:#x}"
            head += f"({self.op}{window})"
        if self.target is not None:
            head += f" on {self.target}"
        return f"{head}: {self.strerror}"


class InvalidArgumentError(SweepError):
    """EINVAL or E2BIG: the kernel rejected the argument structure.

    EINVAL: a size below ``TOUCHED_SWEEP_ARGS_SIZE_VER0``, an unknown op or
    flag, a flag with an op that takes none, an unaligned, reversed or
    out-of-range window, or ``vec``/``vec_len`` given to an op other than
    SWEEP.  E2BIG: a size above one page, or non-zero bytes past the end of
    the structure the kernel knows.
    """


class BadAddressError(SweepError):
    """EFAULT: the argument structure, or the ``vec`` array, is not readable
    or writable user memory."""


class BadPidfdError(SweepError):
    """EBADF: the pidfd is not an open file descriptor, or not a pidfd."""


class ProcessGoneError(SweepError, ProcessLookupError):
    """ESRCH: the process behind the pidfd has exited (or has no memory left
    to look at)."""


class NotPermittedError(SweepError, PermissionError):
    """EPERM or EACCES: the caller may not ptrace-attach to the target
    (the same check as process_vm_readv())."""


class NotAvailableError(SweepError):
    """The running kernel has no touched_sweep().

    Raised with errno ENOSYS both when the kernel says ENOSYS and when its
    syscall number belongs to another call on this kernel; the message says
    which.  The high-level functions raise it without issuing the syscall.
    """


class NotSupportedError(SweepError):
    """EOPNOTSUPP: the kernel has the call and accepted the arguments, but
    does not carry the operation out."""


_ERROR_CLASSES: dict[int, type[SweepError]] = {
    errno_codes.EINVAL: InvalidArgumentError,
    errno_codes.E2BIG: InvalidArgumentError,
    errno_codes.EFAULT: BadAddressError,
    errno_codes.EBADF: BadPidfdError,
    errno_codes.ESRCH: ProcessGoneError,
    errno_codes.EPERM: NotPermittedError,
    errno_codes.EACCES: NotPermittedError,
    errno_codes.ENOSYS: NotAvailableError,
    errno_codes.EOPNOTSUPP: NotSupportedError,
}


def error_for(
    errno: int,
    strerror: str | None = None,
    *,
    op: int | None = None,
    start: int | None = None,
    end: int | None = None,
    target: str | None = None,
) -> SweepError:
    """Return the :class:`SweepError` subclass instance matching ``errno``."""
    cls = _ERROR_CLASSES.get(errno, SweepError)
    name = None if op is None else _op_name(op)
    return cls(errno, strerror, op=name, start=start, end=end, target=target)


def call(
    pidfd: int,
    *,
    op: int,
    flags: int = 0,
    start: int = 0,
    end: int = 0,
    vec: int = 0,
    vec_len: int = 0,
    walk_end: int = 0,
    size: int | None = None,
    extra: bytes = b"",
    args_address: int | None = None,
    target: str | None = None,
) -> tuple[int, int]:
    """Issue ``touched_sweep(pidfd, args)`` once, exactly as described.

    ``args`` is built from the keyword fields, followed by ``extra`` (bytes
    placed right after the structure this binding knows).  ``size`` defaults
    to the length of both; an explicit ``size`` up to 64 KiB gets a buffer
    zero-filled to that length, a larger one is sent as is.  ``args_address``
    sends that address as the ``args`` pointer instead (0 for NULL), leaving
    the memory there to the caller.  ``target`` names the process in error
    messages (default ``"pidfd N"``).

    Nothing is checked here, not even :func:`probe`: on a kernel where the
    number belongs to another call, that call is issued (with every unused
    argument register zero).

    Returns ``(return value, walk_end read back)``; raises the
    :class:`SweepError` subclass matching errno on failure.
    """
    length = ARGS_SIZE + len(extra)
    if size is None:
        size = length
    capacity = max(length, size if size <= _MAX_ZERO_FILL else 0)
    # A u64 array keeps the structure 8-byte aligned.
    buffer = ffi.new("uint64_t[]", (capacity + 7) // 8)
    args = ffi.cast("struct touched_sweep_args *", buffer)
    args.size = size
    args.op = op
    args.flags = flags
    args.start = start
    args.end = end
    args.vec = vec
    args.vec_len = vec_len
    args.walk_end = walk_end
    if extra:
        ffi.memmove(ffi.cast("char *", buffer) + ARGS_SIZE, extra, len(extra))

    pointer = args if args_address is None else ffi.cast("void *", args_address)
    ret = lib.pysweep_touched_sweep(pidfd, pointer)
    if ret < 0:
        raise error_for(
            ffi.errno,
            op=op,
            start=start,
            end=end,
            target=f"pidfd {pidfd}" if target is None else target,
        )
    return ret, args.walk_end


@attrs.frozen
class ProbeResult:
    """What :func:`probe` found out about the running kernel.

    ``available``: the call is there.  ``implemented``: it also carries out
    valid calls (rather than answering them with EOPNOTSUPP).  ``errno``:
    the errno the probe saw, 0 on success.  ``reason``: one sentence for a
    person.  ``release``: the kernel release probed.
    """

    available: bool
    implemented: bool
    errno: int
    reason: str
    release: str


# walk_end is preset to this so that a success can be told from a foreign
# call that returned 0 without touching the structure.
_WALK_END_SENTINEL = 0x5EED_5EED_5EED_5000

_probe_lock = threading.Lock()
_probe_result: ProbeResult | None = None


def _errno_name(errno: int) -> str:
    return errno_codes.errorcode.get(errno, f"errno {errno}")


def _run_probe() -> ProbeResult:
    release = os.uname().release
    nr = NR_TOUCHED_SWEEP
    try:
        pidfd = os.pidfd_open(os.getpid())
    except OSError as exc:
        return ProbeResult(False, False, exc.errno or 0, f"pidfd_open() failed on this kernel ({release}): {exc.strerror}", release)

    # An empty-window sweep of ourselves: valid, harmless, and, where the
    # number is another call, that call sees zero sizes and fails.
    try:
        ret, walk_end = call(pidfd, op=Op.SWEEP, walk_end=_WALK_END_SENTINEL)
    except SweepError as exc:
        err = exc.errno or 0
    else:
        err = 0
    finally:
        os.close(pidfd)

    if err == 0 and ret == 0 and walk_end == 0:
        return ProbeResult(True, True, 0, f"touched_sweep (syscall {nr}) is present", release)
    if err == errno_codes.EOPNOTSUPP:
        return ProbeResult(
            True, False, err, f"touched_sweep (syscall {nr}) is present but answers every valid call with EOPNOTSUPP", release
        )
    if err == errno_codes.ENOSYS:
        return ProbeResult(False, False, err, f"this kernel ({release}) has no touched_sweep (syscall {nr}: ENOSYS)", release)
    if err == 0:
        what = f"returned {ret} and left walk_end {'unset' if walk_end == _WALK_END_SENTINEL else hex(walk_end)}"
    else:
        what = f"failed with {_errno_name(err)}"
    return ProbeResult(
        False, False, err, f"syscall {nr} is not touched_sweep on this kernel ({release}): an empty sweep {what}", release
    )


def probe(*, refresh: bool = False) -> ProbeResult:
    """Find out whether the running kernel has touched_sweep().

    Issues an empty-window SWEEP on a pidfd of the calling process.  Success
    (with ``walk_end`` written back) or EOPNOTSUPP means the call is there;
    ENOSYS means it is not; any other outcome means the number belongs to
    another call on this kernel, reported as not available.  The result is
    cached for the life of the process; ``refresh`` probes again.
    """
    global _probe_result
    with _probe_lock:
        if _probe_result is None or refresh:
            _probe_result = _run_probe()
        return _probe_result


def require_available(op: int, start: int, end: int, target: str | None) -> None:
    """Raise :class:`NotAvailableError` (ENOSYS) unless :func:`probe` found the call."""
    result = probe()
    if not result.available:
        raise NotAvailableError(errno_codes.ENOSYS, result.reason, op=_op_name(op), start=start, end=end, target=target)
