"""Argument validation, one step at a time and in the kernel's order.

Each step's error must win over anything wrong in a later step, so most
cases pair a bad field with a later-checked bad one (a bad pidfd, a kernel
address in vec, ...).  Calls that pass validation are sent with empty
windows, which stay valid once the call is carried out.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guest_support import KERNEL_ADDRESS, TASK_SIZE_MAX, accepted, expect, require_x86_64
from pysweep import ARGS_SIZE, ARGS_SIZE_VER0, PAGE_SIZE, Op, SweepFlag
from pysweep._syscall import ffi

TRACK, UNTRACK, SWEEP = Op.TRACK, Op.UNTRACK, Op.SWEEP
CLEAR = int(SweepFlag.CLEAR)
EINVAL, E2BIG, EFAULT, EBADF = errno.EINVAL, errno.E2BIG, errno.EFAULT, errno.EBADF
NO_PIDFD = -1
# Hypothesis examples are slow under emulation: a few suffice.
few = settings(max_examples=15)


@pytest.fixture(scope="module")
def own() -> Iterator[int]:
    pidfd = os.pidfd_open(os.getpid())
    yield pidfd
    os.close(pidfd)


# 1. The args pointer.


@pytest.mark.parametrize("address", [0, KERNEL_ADDRESS, PAGE_SIZE])
def test_unreadable_args_fault(own: int, address: int) -> None:
    expect(EFAULT, own, op=SWEEP, args_address=address)
    expect(EFAULT, NO_PIDFD, op=SWEEP, args_address=address)


def test_args_running_into_an_unmapped_page_fault(own: int) -> None:
    # The known structure ends exactly at a page the kernel cannot read, and
    # size says there is more: the check that the rest is zero faults.
    area = mmap.mmap(-1, 2 * PAGE_SIZE)
    view = ffi.from_buffer(area)
    try:
        base = int(ffi.cast("uintptr_t", view))
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.mprotect(ctypes.c_void_p(base + PAGE_SIZE), ctypes.c_size_t(PAGE_SIZE), 0) == 0  # PROT_NONE
        offset = PAGE_SIZE - ARGS_SIZE
        args = ffi.new("struct touched_sweep_args *", {"size": ARGS_SIZE + 8, "op": SWEEP})
        area[offset:PAGE_SIZE] = bytes(ffi.buffer(args))
        expect(EFAULT, own, op=SWEEP, args_address=base + offset)
        expect(EFAULT, NO_PIDFD, op=SWEEP, args_address=base + offset)
        # The same structure with size saying there is nothing more is fine.
        area[offset : offset + 8] = ARGS_SIZE.to_bytes(8, "little")
        expect(accepted(), own, op=SWEEP, args_address=base + offset)
    finally:
        ffi.release(view)
        area.close()


# 2. size.


@pytest.mark.parametrize("size", [0, 1, 8, ARGS_SIZE_VER0 - 8, ARGS_SIZE_VER0 - 1])
def test_size_below_ver0_is_einval(own: int, size: int) -> None:
    expect(EINVAL, own, op=SWEEP, size=size)
    expect(EINVAL, NO_PIDFD, op=SWEEP, size=size)
    expect(EINVAL, own, op=SWEEP, size=size, vec=KERNEL_ADDRESS, vec_len=1)


@pytest.mark.parametrize("size", [PAGE_SIZE + 1, 2 * PAGE_SIZE, 1 << 32, (1 << 64) - 1])
def test_size_above_a_page_is_e2big(own: int, size: int) -> None:
    expect(E2BIG, own, op=SWEEP, size=size)
    expect(E2BIG, NO_PIDFD, op=SWEEP, size=size)
    expect(E2BIG, own, op=99, size=size)  # before the op is looked at
    expect(E2BIG, own, op=SWEEP, size=size, start=1)


@pytest.mark.parametrize("size", [ARGS_SIZE_VER0, ARGS_SIZE_VER0 + 8, 512, PAGE_SIZE])
def test_larger_sizes_with_zero_tail_are_accepted(own: int, size: int) -> None:
    expect(accepted(), own, op=SWEEP, size=size)
    expect(accepted(), own, op=TRACK, size=size, start=PAGE_SIZE, end=PAGE_SIZE)


@pytest.mark.parametrize(("size", "at"), [(ARGS_SIZE + 8, 0), (ARGS_SIZE + 8, 7), (PAGE_SIZE, PAGE_SIZE - ARGS_SIZE - 1)])
def test_non_zero_tail_is_e2big(own: int, size: int, at: int) -> None:
    tail = bytearray(size - ARGS_SIZE)
    tail[at] = 0x01
    expect(E2BIG, own, op=SWEEP, size=size, extra=bytes(tail))
    expect(E2BIG, NO_PIDFD, op=SWEEP, size=size, extra=bytes(tail))
    expect(E2BIG, own, op=0, size=size, extra=bytes(tail))  # before the op is looked at
    # Bytes past size are not the kernel's business.
    expect(accepted(), own, op=SWEEP, size=ARGS_SIZE, extra=bytes(tail))


# 3. op and flags.


@pytest.mark.parametrize("op", [0, 4, 0x100, 0xFFFF_FFFF])
def test_unknown_op_is_einval(own: int, op: int) -> None:
    expect(EINVAL, own, op=op)
    expect(EINVAL, NO_PIDFD, op=op)
    expect(EINVAL, own, op=op, vec=KERNEL_ADDRESS, vec_len=1)


@few
@given(st.integers(0, 0xFFFF_FFFF).filter(lambda op: op not in (1, 2, 3)))
def test_any_unknown_op_is_einval(op: int) -> None:
    expect(EINVAL, NO_PIDFD, op=op, vec=KERNEL_ADDRESS, vec_len=1)


@pytest.mark.parametrize("flags", [2, 4, 1 << 31, 0xFFFF_FFFF, CLEAR | 2])
def test_unknown_flags_are_einval(own: int, flags: int) -> None:
    expect(EINVAL, own, op=SWEEP, flags=flags)
    expect(EINVAL, NO_PIDFD, op=SWEEP, flags=flags)
    expect(EINVAL, own, op=SWEEP, flags=flags, vec=KERNEL_ADDRESS, vec_len=1)


@pytest.mark.parametrize("op", [TRACK, UNTRACK])
def test_flags_with_track_or_untrack_are_einval(own: int, op: int) -> None:
    expect(EINVAL, own, op=op, flags=CLEAR)
    expect(EINVAL, NO_PIDFD, op=op, flags=CLEAR)


@pytest.mark.parametrize("flags", [0, CLEAR])
def test_sweep_flags_are_accepted(own: int, flags: int) -> None:
    expect(accepted(), own, op=SWEEP, flags=flags)


# 4. The window.


@pytest.mark.parametrize(
    ("start", "end"),
    [(1, PAGE_SIZE), (PAGE_SIZE + 8, 2 * PAGE_SIZE), (0, 1), (PAGE_SIZE, 2 * PAGE_SIZE - 1), (PAGE_SIZE // 2, PAGE_SIZE // 2)],
)
@pytest.mark.parametrize("op", [TRACK, UNTRACK, SWEEP])
def test_unaligned_window_is_einval(own: int, op: int, start: int, end: int) -> None:
    expect(EINVAL, own, op=op, start=start, end=end)
    expect(EINVAL, NO_PIDFD, op=op, start=start, end=end)


@few
@given(st.integers(0, TASK_SIZE_MAX), st.integers(0, TASK_SIZE_MAX))
def test_any_unaligned_window_is_einval(start: int, end: int) -> None:
    if start % PAGE_SIZE == 0 and end % PAGE_SIZE == 0:
        start += 1
    expect(EINVAL, NO_PIDFD, op=SWEEP, start=start, end=end, vec=KERNEL_ADDRESS, vec_len=1)


@pytest.mark.parametrize("op", [TRACK, UNTRACK, SWEEP])
def test_reversed_window_is_einval(own: int, op: int) -> None:
    expect(EINVAL, own, op=op, start=2 * PAGE_SIZE, end=PAGE_SIZE)
    expect(EINVAL, NO_PIDFD, op=op, start=PAGE_SIZE, end=0)


def test_window_past_task_size_is_einval(own: int) -> None:
    require_x86_64()
    for start, end in [
        (0, TASK_SIZE_MAX + PAGE_SIZE),
        (TASK_SIZE_MAX + PAGE_SIZE,) * 2,
        (0, (1 << 64) - PAGE_SIZE),
        (KERNEL_ADDRESS,) * 2,
    ]:
        expect(EINVAL, own, op=SWEEP, start=start, end=end)
        expect(EINVAL, NO_PIDFD, op=TRACK, start=start, end=end)
        expect(EINVAL, own, op=SWEEP, start=start, end=end, vec=KERNEL_ADDRESS, vec_len=1)


def test_window_ending_at_task_size_is_accepted(own: int) -> None:
    require_x86_64()
    expect(accepted(), own, op=SWEEP, start=TASK_SIZE_MAX, end=TASK_SIZE_MAX)
    expect(accepted(), own, op=TRACK, start=TASK_SIZE_MAX, end=TASK_SIZE_MAX)


@pytest.mark.parametrize("op", [TRACK, UNTRACK, SWEEP])
@pytest.mark.parametrize("at", [0, PAGE_SIZE, 0x7F00_0000_0000])
def test_empty_windows_are_accepted(own: int, op: int, at: int) -> None:
    expect(accepted(), own, op=op, start=at, end=at)


# 5. vec and vec_len.


@pytest.mark.parametrize("op", [TRACK, UNTRACK])
@pytest.mark.parametrize(("vec", "vec_len"), [(PAGE_SIZE, 0), (0, 1), (KERNEL_ADDRESS, 1), (0, 1 << 63)])
def test_vec_with_track_or_untrack_is_einval(own: int, op: int, vec: int, vec_len: int) -> None:
    expect(EINVAL, own, op=op, vec=vec, vec_len=vec_len)
    expect(EINVAL, NO_PIDFD, op=op, vec=vec, vec_len=vec_len)


@pytest.mark.parametrize("vec_len", [0, 1, 16, 1 << 20])
def test_sweep_into_kernel_memory_faults(own: int, vec_len: int) -> None:
    # Even an empty vector must be a user address, as for PAGEMAP_SCAN.
    expect(EFAULT, own, op=SWEEP, vec=KERNEL_ADDRESS, vec_len=vec_len)
    expect(EFAULT, NO_PIDFD, op=SWEEP, vec=KERNEL_ADDRESS, vec_len=vec_len)  # before the pidfd


def test_sweep_vec_in_user_memory_is_accepted(own: int) -> None:
    expect(accepted(), own, op=SWEEP, vec=0, vec_len=0)
    room = ffi.new("struct touched_range[]", 4)
    expect(accepted(), own, op=SWEEP, vec=int(ffi.cast("uintptr_t", room)), vec_len=4)


# 6. The pidfd.


def test_no_fd_is_ebadf() -> None:
    expect(EBADF, NO_PIDFD, op=SWEEP)
    expect(EBADF, 1 << 20, op=TRACK)
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    expect(EBADF, read_end, op=SWEEP)  # just closed


def test_fd_that_is_not_a_pidfd_is_ebadf(tmp_path: os.PathLike[str]) -> None:
    with open(os.path.join(tmp_path, "regular"), "w+b") as regular:
        expect(EBADF, regular.fileno(), op=SWEEP)
        expect(EBADF, regular.fileno(), op=TRACK, start=PAGE_SIZE, end=2 * PAGE_SIZE)
    read_end, write_end = os.pipe()
    try:
        expect(EBADF, read_end, op=UNTRACK)
    finally:
        os.close(read_end)
        os.close(write_end)
    directory = os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY)
    try:
        expect(EBADF, directory, op=SWEEP)
    finally:
        os.close(directory)
