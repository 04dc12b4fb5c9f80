"""probe() and the refusal of the high-level calls where the syscall is missing.

This host has no touched_sweep; on kernels since 6.13 its number, 463, is
setxattrat().  seccomp filters stand in for the other kernels: one making
463 fail with a chosen errno, one killing the process if 463 is issued.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pysweep
from pysweep import _syscall

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
SECCOMP = TESTS / "seccomp_filter.py"


def kernel_version() -> tuple[int, int]:
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def run_under_filter(errno_name: str, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where syscall 463 answers ``errno_name``."""
    prologue = f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(TESTS)!r}]\n"
    return subprocess.run(
        [
            sys.executable,
            str(SECCOMP),
            "--nr",
            str(pysweep.NR_TOUCHED_SWEEP),
            "--errno",
            errno_name,
            "--",
            sys.executable,
            "-c",
            prologue + textwrap.dedent(code),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


PROBE_AS_JSON = """
import json, pysweep, attrs
print(json.dumps(attrs.asdict(pysweep.probe())))
"""


def probed_under(errno_name: str) -> dict[str, object]:
    done = run_under_filter(errno_name, PROBE_AS_JSON)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.skipif(kernel_version() < (6, 13), reason="syscall 463 is setxattrat only since 6.13")
def test_probe_reports_foreign_syscall_on_this_host() -> None:
    result = pysweep.probe(refresh=True)
    assert not result.available and not result.implemented
    assert result.errno == errno.EINVAL  # setxattrat() with a zero size
    release = os.uname().release
    assert result.release == release
    assert result.reason == f"syscall 463 is not touched_sweep on this kernel ({release}): an empty sweep failed with EINVAL"


def test_probe_is_cached() -> None:
    assert pysweep.probe() is pysweep.probe()
    assert pysweep.probe(refresh=True) == pysweep.probe()


def test_enosys_means_absent() -> None:
    result = probed_under("ENOSYS")
    assert result["available"] is False and result["errno"] == errno.ENOSYS
    assert result["reason"] == f"this kernel ({os.uname().release}) has no touched_sweep (syscall 463: ENOSYS)"


def test_eopnotsupp_means_present() -> None:
    result = probed_under("EOPNOTSUPP")
    assert result["available"] is True and result["implemented"] is False
    assert result["errno"] == errno.EOPNOTSUPP


@pytest.mark.parametrize("errno_name", ["EPERM", "EBADF", "EFAULT", "E2BIG", "ESRCH"])
def test_other_errnos_mean_another_call(errno_name: str) -> None:
    result = probed_under(errno_name)
    assert result["available"] is False and result["errno"] == getattr(errno, errno_name)
    assert str(result["reason"]).startswith("syscall 463 is not touched_sweep on this kernel (")
    assert str(result["reason"]).endswith(f"failed with {errno_name}")


def test_success_without_walk_end_means_another_call() -> None:
    # SECCOMP_RET_ERRNO with 0 makes the call return 0 without running it,
    # so walk_end keeps the value the probe preset.
    result = probed_under("0")
    assert result["available"] is False and result["errno"] == 0
    assert str(result["reason"]).endswith("an empty sweep returned 0 and left walk_end unset")


REFUSALS = """
import errno, os, pysweep, seccomp_filter
assert not pysweep.probe().available
seccomp_filter.deny_syscall(pysweep.NR_TOUCHED_SWEEP, None)  # issuing 463 from now on kills us
calls = [
    lambda: pysweep.track(os.getpid(), 0x1000, 0x2000),
    lambda: pysweep.untrack(os.getpid(), 0x1000, 0x2000),
    lambda: pysweep.sweep(os.getpid(), 0x1000, 0x2000),
    lambda: pysweep.Target.from_pid(os.getpid()).sweep(0x1000, 0x2000, clear=False),
]
messages = []
for refused in calls:
    try:
        refused()
    except pysweep.NotAvailableError as error:
        assert error.errno == errno.ENOSYS
        messages.append(str(error))
print("\\n".join(messages))
"""


@pytest.mark.parametrize("errno_name", ["ENOSYS", "EINVAL"])
def test_high_level_calls_refuse_without_issuing_the_syscall(errno_name: str) -> None:
    done = run_under_filter(errno_name, REFUSALS)
    assert done.returncode == 0, (done.returncode, done.stderr)
    messages = done.stdout.splitlines()
    assert len(messages) == 4
    assert messages[0].startswith("touched_sweep(TRACK, 0x1000-0x2000) on pid ")
    assert messages[1].startswith("touched_sweep(UNTRACK, 0x1000-0x2000) on pid ")
    assert messages[2].startswith("touched_sweep(SWEEP, 0x1000-0x2000) on pid ")
    reason = "has no touched_sweep" if errno_name == "ENOSYS" else "syscall 463 is not touched_sweep on this kernel"
    assert all(reason in message for message in messages)


def test_refusal_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    unavailable = _syscall.ProbeResult(False, False, errno.ENOSYS, "no touched_sweep here", "x")
    monkeypatch.setattr(_syscall, "_probe_result", unavailable)

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("issued while unavailable")

    monkeypatch.setattr(pysweep, "call", must_not_run)
    monkeypatch.setattr(os, "pidfd_open", must_not_run)
    with pytest.raises(pysweep.NotAvailableError, match=r"^touched_sweep\(TRACK, 0x0-0x1000\) on pid 1: no touched_sweep here$"):
        pysweep.track(1, 0, 0x1000)
    with pytest.raises(pysweep.NotAvailableError):
        pysweep.sweep(pysweep.Target(99, pid=1), 0, 0x1000)
    with pytest.raises(pysweep.NotAvailableError, match=r"on pidfd 99:"):
        pysweep.Target(99).untrack(0, 0x1000)


def test_present_but_unimplemented_raises_not_supported() -> None:
    done = run_under_filter(
        "EOPNOTSUPP",
        """
        import errno, os, pysweep
        pid = os.getpid()
        for attempt in (lambda: pysweep.track(pid, 0x1000, 0x2000), lambda: pysweep.sweep(pid, 0, 0x4000)):
            try:
                attempt()
            except pysweep.NotSupportedError as error:
                assert error.errno == errno.EOPNOTSUPP
                print(str(error).replace(str(pid), "PID"))
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "touched_sweep(TRACK, 0x1000-0x2000) on pid PID: Operation not supported",
        "touched_sweep(SWEEP, 0x0-0x4000) on pid PID: Operation not supported",
    ]
