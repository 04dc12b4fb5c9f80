"""Helpers for the guest tests: expected outcomes, pidfds, processes to point at."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import mmap
import os
import select
import signal
from collections.abc import Callable, Iterator

import pytest

import pysweep
from libc import MAP_FAILED, libc
from pysweep._syscall import call

PR_SET_DUMPABLE = 4
PR_SET_PTRACER = 0x59616D61
PR_SET_PTRACER_ANY = ctypes.c_ulong(-1).value


def _five_level_paging() -> bool:
    # Linux maps above 47 bits only when asked to and when the page tables
    # have five levels.
    address = libc.mmap(1 << 52, mmap.PAGESIZE, mmap.PROT_READ, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if address is None or address == MAP_FAILED:
        return False
    libc.munmap(address, mmap.PAGESIZE)
    return bool(address >= 1 << 47)


# Large enough that no user address reaches it: access_ok() fails there.
KERNEL_ADDRESS = 0xFFFF_8000_0000_0000
# x86_64's TASK_SIZE_MAX: (1 << 47) - PAGE_SIZE, or (1 << 56) - PAGE_SIZE with LA57.
TASK_SIZE_MAX = (1 << (56 if _five_level_paging() else 47)) - mmap.PAGESIZE


def prctl(option: int, arg: int) -> int:
    return int(libc.prctl(option, arg, 0, 0, 0))


def outcome(pidfd: int, **fields: object) -> int:
    """The errno of a raw call, 0 when it succeeded."""
    try:
        call(pidfd, **fields)  # type: ignore[arg-type]
    except pysweep.SweepError as error:
        return error.errno or 0
    return 0


def accepted() -> int:
    """The outcome of a call that passes validation: EOPNOTSUPP while the
    kernel only validates, success once it carries calls out."""
    return 0 if pysweep.probe().implemented else errno.EOPNOTSUPP


def name(code: int) -> str:
    return errno.errorcode.get(code, str(code))


def expect(code: int, pidfd: int, **fields: object) -> None:
    got = outcome(pidfd, **fields)
    assert name(got) == name(code), fields


@contextlib.contextmanager
def pidfd_of(pid: int) -> Iterator[int]:
    pidfd = os.pidfd_open(pid)
    try:
        yield pidfd
    finally:
        os.close(pidfd)


def drop_to(uid: int) -> None:
    """Become ``uid`` (group ``uid`` too) for good, with no capabilities left."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def in_child(work: Callable[[], object]) -> object:
    """Run ``work`` in a forked child and return what it returned (as JSON),
    or re-raise a description of what it raised."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            os.close(read_end)
            try:
                report = {"value": work()}
            except BaseException as error:  # reported to the parent  # noqa: BLE001
                report = {
                    "error": type(error).__name__,
                    "errno": getattr(error, "errno", None),
                    "message": str(error),
                    "mro": [c.__name__ for c in type(error).__mro__],
                }
            os.write(write_end, json.dumps(report).encode())
        except BaseException:  # the child must reach os._exit()  # noqa: BLE001
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and data, "child failed before reporting"
    return json.loads(data)


@contextlib.contextmanager
def sleeper(uid: int | None = None) -> Iterator[tuple[int, int]]:
    """A child process that sleeps until killed, optionally as ``uid`` and
    dumpable (so that a caller of the same uid may ptrace-attach to it).
    Yields (pid, pidfd)."""
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_read)
            if uid is not None:
                drop_to(uid)
                # Changing credentials clears the dumpable flag; Yama, where
                # present, would still refuse a non-ancestor without this.
                prctl(PR_SET_DUMPABLE, 1)
                prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY)
            os.write(ready_write, b"ready")
            while True:
                signal.pause()
        finally:
            os._exit(1)
    pidfd = os.pidfd_open(pid)
    os.close(ready_write)
    try:
        with os.fdopen(ready_read, "rb") as ready:
            assert ready.read(5) == b"ready", "sleeper did not start"
        yield pid, pidfd
    finally:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(pidfd)


@contextlib.contextmanager
def exited_child(*, uid: int | None = None, reap: bool) -> Iterator[int]:
    """A pidfd of a child that has exited: a zombie, or reaped if ``reap``."""
    pid = os.fork()
    if pid == 0:
        try:
            if uid is not None:
                drop_to(uid)
        finally:
            os._exit(0)
    pidfd = os.pidfd_open(pid)
    try:
        # A pidfd polls readable once its process has exited.
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        assert poller.poll(30_000), "child did not exit"
        if reap:
            os.waitpid(pid, 0)
        yield pidfd
    finally:
        if not reap:
            os.waitpid(pid, 0)
        os.close(pidfd)


def require_x86_64() -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("TASK_SIZE_MAX here is the x86_64 value")
