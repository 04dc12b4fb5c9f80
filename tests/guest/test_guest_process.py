"""The target process: exited (ESRCH), not ours (EPERM), and the high-level API.

Steps 6-9 of the kernel's checks: the pidfd, then whether the process is
still there, then the caller's ptrace-attach rights over it.
"""

from __future__ import annotations

import errno
import os

import pytest

import pysweep
from guest_support import KERNEL_ADDRESS, accepted, drop_to, exited_child, expect, in_child, name, outcome, sleeper
from pysweep import PAGE_SIZE, Op

SWEEP, TRACK = Op.SWEEP, Op.TRACK
OWNER, STRANGER = 1000, 1001


def test_probe_reports_present(touched_sweep_present: pysweep.ProbeResult) -> None:
    assert touched_sweep_present.available
    assert touched_sweep_present.errno in (0, errno.EOPNOTSUPP)
    assert touched_sweep_present.implemented == (touched_sweep_present.errno == 0)
    assert "is present" in touched_sweep_present.reason


# 7. The process has exited.


@pytest.mark.parametrize("reap", [True, False], ids=["reaped", "zombie"])
def test_exited_process_is_esrch(reap: bool) -> None:
    with exited_child(reap=reap) as pidfd:
        expect(errno.ESRCH, pidfd, op=SWEEP)
        expect(errno.ESRCH, pidfd, op=TRACK, start=PAGE_SIZE, end=2 * PAGE_SIZE)
        # Everything checked before the process wins over its being gone.
        expect(errno.EINVAL, pidfd, op=SWEEP, start=1)
        expect(errno.EFAULT, pidfd, op=SWEEP, vec=KERNEL_ADDRESS, vec_len=1)
        expect(errno.E2BIG, pidfd, op=SWEEP, size=PAGE_SIZE + 1)


@pytest.mark.parametrize("reap", [True, False], ids=["reaped", "zombie"])
def test_exited_process_is_esrch_before_permission(reap: bool) -> None:
    with exited_child(uid=OWNER, reap=reap) as pidfd:

        def as_stranger() -> int:
            drop_to(STRANGER)
            return outcome(pidfd, op=SWEEP)

        assert name(in_child(as_stranger)["value"]) == "ESRCH"  # type: ignore[index]


# 8. Permission: PTRACE_MODE_ATTACH_REALCREDS over the target.


def test_stranger_is_refused() -> None:
    with sleeper(uid=OWNER) as (_, pidfd):

        def as_stranger() -> list[int]:
            drop_to(STRANGER)
            return [
                outcome(pidfd, op=SWEEP),
                outcome(pidfd, op=TRACK, start=PAGE_SIZE, end=PAGE_SIZE),
                outcome(pidfd, op=SWEEP, start=1),
                outcome(-1, op=SWEEP),
            ]

        got = in_child(as_stranger)["value"]  # type: ignore[index]
        assert [name(code) for code in got] == ["EPERM", "EPERM", "EINVAL", "EBADF"]


def test_stranger_gets_permission_error_from_the_api() -> None:
    with sleeper(uid=OWNER) as (pid, pidfd):

        def as_stranger() -> None:
            drop_to(STRANGER)
            pysweep.sweep(pysweep.Target.from_pidfd(pidfd), 0, 0)

        report = in_child(as_stranger)
        assert report["error"] == "NotPermittedError" and report["errno"] == errno.EPERM  # type: ignore[index]
        assert "PermissionError" in report["mro"]  # type: ignore[index]
        assert report["message"] == f"touched_sweep(SWEEP, 0x0-0x0) on pid {pid}: Operation not permitted"  # type: ignore[index]


def test_same_user_is_allowed() -> None:
    with sleeper(uid=OWNER) as (_, pidfd):

        def as_owner() -> list[int]:
            drop_to(OWNER)
            return [outcome(pidfd, op=SWEEP), outcome(pidfd, op=TRACK, start=PAGE_SIZE, end=PAGE_SIZE)]

        got = in_child(as_owner)["value"]  # type: ignore[index]
        assert [name(code) for code in got] == [name(accepted())] * 2


def test_root_is_allowed() -> None:
    with sleeper(uid=OWNER) as (_, pidfd):
        expect(accepted(), pidfd, op=SWEEP)
        expect(accepted(), pidfd, op=TRACK, start=PAGE_SIZE, end=PAGE_SIZE)
    with sleeper() as (_, pidfd):
        expect(accepted(), pidfd, op=SWEEP)


# 9. Everything valid, through the high-level API.


def test_api_on_own_process() -> None:
    pid = os.getpid()
    if pysweep.probe().implemented:
        pysweep.track(pid, PAGE_SIZE, PAGE_SIZE)
        assert pysweep.sweep(pid, PAGE_SIZE, PAGE_SIZE) == pysweep.SweepResult((), PAGE_SIZE)
        pysweep.untrack(pid, PAGE_SIZE, PAGE_SIZE)
        return
    with pytest.raises(pysweep.NotSupportedError) as caught:
        pysweep.track(pid, PAGE_SIZE, PAGE_SIZE)
    assert caught.value.errno == errno.EOPNOTSUPP
    assert str(caught.value) == f"touched_sweep(TRACK, 0x1000-0x1000) on pid {pid}: Operation not supported"
    with pysweep.Target.from_pid(pid) as target, pytest.raises(pysweep.NotSupportedError, match=r"\(SWEEP, 0x0-0x0\)"):
        target.sweep(0, 0)
    with pytest.raises(pysweep.NotSupportedError, match=r"\(UNTRACK, "):
        pysweep.untrack(pid, 0, 0)


def test_api_error_classes(tmp_path: os.PathLike[str]) -> None:
    pid = os.getpid()
    with pytest.raises(pysweep.InvalidArgumentError, match=rf"^touched_sweep\(SWEEP, 0x1-0x2000\) on pid {pid}: Invalid argument$"):
        pysweep.sweep(pid, 1, 0x2000)
    with pytest.raises(pysweep.InvalidArgumentError):
        pysweep.track(pid, 0x2000, 0x1000)
    with (
        open(os.path.join(tmp_path, "regular"), "w") as regular,
        pytest.raises(pysweep.BadPidfdError, match=rf"on pidfd {regular.fileno()}: Bad file descriptor$"),
    ):
        pysweep.sweep(pysweep.Target.from_pidfd(regular.fileno()), 0, 0)
    with exited_child(reap=True) as pidfd:
        with pytest.raises(ProcessLookupError) as caught:
            pysweep.track(pysweep.Target.from_pidfd(pidfd), PAGE_SIZE, PAGE_SIZE)
        assert isinstance(caught.value, pysweep.ProcessGoneError)
