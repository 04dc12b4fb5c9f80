"""Errno to exception mapping and messages."""

from __future__ import annotations

import errno
import os
import pickle

import pytest

import pysweep
from pysweep._syscall import call, error_for

MAPPING = [
    (errno.EINVAL, pysweep.InvalidArgumentError, None),
    (errno.E2BIG, pysweep.InvalidArgumentError, None),
    (errno.EFAULT, pysweep.BadAddressError, None),
    (errno.EBADF, pysweep.BadPidfdError, None),
    (errno.ESRCH, pysweep.ProcessGoneError, ProcessLookupError),
    (errno.EPERM, pysweep.NotPermittedError, PermissionError),
    (errno.EACCES, pysweep.NotPermittedError, PermissionError),
    (errno.ENOSYS, pysweep.NotAvailableError, None),
    (errno.EOPNOTSUPP, pysweep.NotSupportedError, None),
    (errno.ENOMEM, pysweep.SweepError, None),
]


@pytest.mark.parametrize(("code", "cls", "builtin"), MAPPING)
def test_errno_maps_to_class(code: int, cls: type[pysweep.SweepError], builtin: type[OSError] | None) -> None:
    error = error_for(code, op=pysweep.Op.SWEEP, start=0x1000, end=0x3000, target="pid 123")
    assert type(error) is cls
    assert isinstance(error, pysweep.SweepError) and isinstance(error, OSError)
    if builtin is not None:
        assert isinstance(error, builtin)
    assert error.errno == code and error.strerror == os.strerror(code)
    assert str(error) == f"touched_sweep(SWEEP, 0x1000-0x3000) on pid 123: {os.strerror(code)}"
    assert (error.op, error.start, error.end, error.target) == ("SWEEP", 0x1000, 0x3000, "pid 123")


def test_every_error_class_is_documented() -> None:
    for _, cls, _ in MAPPING:
        assert cls.__doc__ and cls.__doc__.strip()


def test_message_for_unknown_op_and_missing_parts() -> None:
    assert str(error_for(errno.EINVAL, op=9, start=0, end=0)) == "touched_sweep(op 0x9, 0x0-0x0): Invalid argument"
    assert str(error_for(errno.EBADF, target="pidfd 7")) == "touched_sweep on pidfd 7: Bad file descriptor"
    assert str(pysweep.SweepError(errno.ENOSYS, "not here")) == "touched_sweep: not here"


def test_errors_pickle() -> None:
    error = error_for(errno.EPERM, op=pysweep.Op.TRACK, start=0, end=0x2000, target="pid 5")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is pysweep.NotPermittedError
    assert str(copy) == str(error) and copy.errno == errno.EPERM


def test_can_be_caught_as_the_builtin() -> None:
    with pytest.raises(ProcessLookupError):
        raise error_for(errno.ESRCH, op=pysweep.Op.SWEEP, start=0, end=0)


def test_raw_call_raises_with_context() -> None:
    # Whatever this kernel's syscall 463 is, an all-zero-size call fails;
    # the failure carries the call's description.
    pidfd = os.pidfd_open(os.getpid())
    try:
        with pytest.raises(pysweep.SweepError) as caught:
            call(pidfd, op=pysweep.Op.SWEEP, start=0x1000, end=0x3000, target="pid 42")
    finally:
        os.close(pidfd)
    assert str(caught.value).startswith("touched_sweep(SWEEP, 0x1000-0x3000) on pid 42: ")


def test_sweep_error_has_an_integer_pid_and_pickles_with_it() -> None:
    error = error_for(errno.ESRCH, op=pysweep.Op.SWEEP, start=0x1000, end=0x3000, target="pid 4242")
    assert error.pid == 4242
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and copy.pid == 4242 and str(copy) == str(error)
    assert (copy.errno, copy.op, copy.start, copy.end) == (errno.ESRCH, error.op, 0x1000, 0x3000)
    assert error_for(errno.EBADF, target="pidfd 7").pid is None
    assert pysweep.SweepError(errno.EIO).pid is None


@pytest.mark.parametrize("cls", [pysweep.BackendError, pysweep.BackendUnavailableError])
def test_backend_errors_are_public_and_pickle(cls: type[pysweep.SweepError]) -> None:
    error = cls(
        errno.EIO,
        "reading /proc/7/pagemap: Input/output error",
        backend="soft_dirty",  # type: ignore[call-arg]
        **({"target": "pid 7"} if cls is pysweep.BackendError else {}),
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error) == "soft_dirty backend: reading /proc/7/pagemap: Input/output error"
    assert copy.backend == "soft_dirty"  # type: ignore[attr-defined]
    assert copy.errno == errno.EIO
    if cls is pysweep.BackendError:
        assert copy.pid == 7
    assert isinstance(copy, OSError) and "BackendError" in pysweep.__all__
