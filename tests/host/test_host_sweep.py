"""Target and the sweep loop, against a stand-in for the kernel side.

The stand-in replaces the raw call: it writes ranges into the caller's
``vec`` and answers ``walk_end`` the way the uapi header describes.
"""

from __future__ import annotations

import errno
import itertools
import os
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pysweep
from pysweep import PAGE_SIZE, Op, Range, SweepFlag, _syscall
from pysweep._syscall import ffi


def joined(ranges: list[Range]) -> list[Range]:
    out: list[Range] = []
    for r in ranges:
        if out and out[-1].end == r.start and out[-1].flags == r.flags:
            out[-1] = Range(out[-1].start, r.end, r.flags)
        else:
            out.append(r)
    return out


class StandInKernel:
    """Serves fixed ranges, coalescing the entries of one call as the header
    promises.  When the vec is full, ``stop_at_next`` keeps extending the
    last entry and makes walk_end the start of the next one; otherwise the
    call ends with the last written entry, so that the next call may start
    with a range that meets it with equal flags."""

    def __init__(self, ranges: list[Range], *, stop_at_next: bool = False) -> None:
        self.ranges = sorted(ranges, key=lambda r: r.start)
        self.stop_at_next = stop_at_next
        self.calls: list[dict[str, int]] = []

    def __call__(
        self,
        pidfd: int,
        *,
        op: int,
        flags: int = 0,
        start: int = 0,
        end: int = 0,
        vec: int = 0,
        vec_len: int = 0,
        target: str | None = None,
    ) -> tuple[int, int]:
        self.calls.append({"op": op, "flags": flags, "start": start, "end": end, "vec_len": vec_len})
        if op != Op.SWEEP:
            return 0, 0
        written: list[Range] = []
        walk_end = end
        for r in (r for r in self.ranges if start <= r.start and r.end <= end):
            last = written[-1] if written else None
            full = len(written) >= vec_len
            if last is not None and last.end == r.start and last.flags == r.flags and (self.stop_at_next or not full):
                written[-1] = Range(last.start, r.end, r.flags)
            elif full:
                walk_end = last.end if last is not None and not self.stop_at_next else r.start
                break
            else:
                written.append(r)
        out = ffi.cast("struct touched_range *", vec)
        for i, r in enumerate(written):
            out[i].start, out[i].end, out[i].flags = r.start, r.end, int(r.flags)
        return len(written), walk_end


@pytest.fixture
def available(monkeypatch: pytest.MonkeyPatch) -> None:
    present = _syscall.ProbeResult(True, True, 0, "stand-in", "x")
    monkeypatch.setattr(_syscall, "_probe_result", present)


@pytest.fixture
def self_target() -> Iterator[pysweep.Target]:
    with pysweep.Target.from_pid(os.getpid()) as target:
        yield target


def install(monkeypatch: pytest.MonkeyPatch, kernel: StandInKernel) -> StandInKernel:
    monkeypatch.setattr(pysweep, "call", kernel)
    return kernel


@st.composite
def layouts(draw: st.DrawFn) -> list[Range]:
    """Disjoint ranges (adjacent ones allowed, as a kernel may split them)."""
    cursor, ranges = 0, []
    for _ in range(draw(st.integers(0, 12))):
        cursor += draw(st.integers(0, 3))
        length = draw(st.integers(1, 4))
        ranges.append(Range(cursor * PAGE_SIZE, (cursor + length) * PAGE_SIZE, draw(st.sampled_from([1, 3, 5]))))
        cursor += length
    return ranges


WINDOW_END = 80 * PAGE_SIZE


@pytest.mark.usefixtures("available")
@given(layouts(), st.integers(1, 5), st.booleans(), st.booleans())
def test_sweep_collects_the_whole_window(ranges: list[Range], batch: int, stop_at_next: bool, clear: bool) -> None:
    kernel = StandInKernel(ranges, stop_at_next=stop_at_next)
    with pytest.MonkeyPatch.context() as patch, pysweep.Target.from_pid(os.getpid()) as target:
        install(patch, kernel)
        result = target.sweep(0, WINDOW_END, clear=clear, batch=batch)
    assert list(result.ranges) == joined(ranges)
    assert result.walk_end == WINDOW_END
    assert kernel.calls[0]["start"] == 0
    assert all(c["op"] == Op.SWEEP and c["end"] == WINDOW_END and c["vec_len"] == batch for c in kernel.calls)
    assert all(c["flags"] == (SweepFlag.CLEAR if clear else 0) for c in kernel.calls)
    assert all(a["start"] < b["start"] for a, b in itertools.pairwise(kernel.calls))


@pytest.mark.usefixtures("available")
@given(layouts(), st.integers(1, 4), st.integers(1, 5))
def test_max_ranges_stops_early_and_resumes(ranges: list[Range], max_ranges: int, batch: int) -> None:
    kernel = StandInKernel(ranges)
    collected: list[Range] = []
    cursor = 0
    with pytest.MonkeyPatch.context() as patch, pysweep.Target.from_pid(os.getpid()) as target:
        install(patch, kernel)
        for _ in range(100):
            result = target.sweep(cursor, WINDOW_END, max_ranges=max_ranges, batch=batch)
            assert len(result.ranges) <= max_ranges
            assert all(c["vec_len"] <= min(batch, max_ranges) for c in kernel.calls)
            collected += result.ranges
            if result.walk_end == WINDOW_END:
                break
            assert len(result.ranges) == max_ranges
            cursor = result.walk_end
    assert joined(collected) == joined(ranges)


@pytest.mark.usefixtures("available")
def test_empty_window_still_issues_one_call(monkeypatch: pytest.MonkeyPatch, self_target: pysweep.Target) -> None:
    kernel = install(monkeypatch, StandInKernel([Range(0, PAGE_SIZE)]))
    assert self_target.sweep(0x5000, 0x5000) == pysweep.SweepResult((), 0x5000)
    assert len(kernel.calls) == 1


@pytest.mark.usefixtures("available")
def test_track_and_untrack_send_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = install(monkeypatch, StandInKernel([]))
    pysweep.track(os.getpid(), 0x1000, 0x9000)
    with pysweep.Target.from_pid(os.getpid()) as target:
        pysweep.untrack(target, 0x2000, 0x3000)
    assert [(c["op"], c["flags"], c["start"], c["end"], c["vec_len"]) for c in kernel.calls] == [
        (Op.TRACK, 0, 0x1000, 0x9000, 0),
        (Op.UNTRACK, 0, 0x2000, 0x3000, 0),
    ]


@pytest.mark.usefixtures("available")
def test_a_kernel_that_makes_no_progress_is_reported(monkeypatch: pytest.MonkeyPatch, self_target: pysweep.Target) -> None:
    monkeypatch.setattr(pysweep, "call", lambda pidfd, **f: (0, f["start"]))
    with pytest.raises(RuntimeError, match="stopped at 0x1000"):
        self_target.sweep(0x1000, 0x4000)
    monkeypatch.setattr(pysweep, "call", lambda pidfd, **f: (f["vec_len"] + 1, f["end"]))
    with pytest.raises(RuntimeError, match="into room for"):
        self_target.sweep(0x1000, 0x4000, batch=2)


@pytest.mark.usefixtures("available")
def test_kernel_errors_pass_through(monkeypatch: pytest.MonkeyPatch, self_target: pysweep.Target) -> None:
    def refuse(pidfd: int, **fields: int) -> tuple[int, int]:
        raise _syscall.error_for(
            errno.EPERM, op=fields["op"], start=fields["start"], end=fields["end"], target=str(fields["target"])
        )

    monkeypatch.setattr(pysweep, "call", refuse)
    with pytest.raises(PermissionError, match=rf"^touched_sweep\(SWEEP, 0x0-0x2000\) on pid {os.getpid()}: "):
        self_target.sweep(0, 0x2000)


def test_bad_sweep_parameters(self_target: pysweep.Target) -> None:
    with pytest.raises(ValueError, match="max_ranges"):
        self_target.sweep(0, 0x1000, max_ranges=0)
    with pytest.raises(ValueError, match="batch"):
        self_target.sweep(0, 0x1000, batch=0)


def test_target_from_pid_owns_its_pidfd() -> None:
    target = pysweep.Target.from_pid(os.getpid())
    pidfd = target.fileno()
    assert target.pid == os.getpid() and not target.closed
    assert repr(target) == f"<Target pid={os.getpid()} pidfd={pidfd}>"
    with target:
        pass
    assert target.closed and repr(target) == f"<Target pid={os.getpid()} closed>"
    with pytest.raises(OSError):
        os.fstat(pidfd)
    with pytest.raises(ValueError, match="closed"):
        target.fileno()
    target.close()  # closing twice is fine


def test_target_from_pidfd_borrows() -> None:
    pidfd = os.pidfd_open(os.getpid())
    try:
        with pysweep.Target.from_pidfd(pidfd) as target:
            assert target.fileno() == pidfd
            assert target.pid == os.getpid()  # read from fdinfo
        os.fstat(pidfd)  # still open
    finally:
        os.close(pidfd)


def test_target_from_a_non_pidfd_has_no_pid(tmp_path: os.PathLike[str]) -> None:
    with open(os.path.join(tmp_path, "file"), "w") as file:
        target = pysweep.Target.from_pidfd(file.fileno())
        assert target.pid is None and target._describe() == f"pidfd {file.fileno()}"


def test_target_type_is_checked() -> None:
    with pytest.raises(TypeError, match="pid or a Target"):
        pysweep.track("123", 0, 0x1000)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pysweep.sweep(True, 0, 0x1000)


def test_from_pid_of_no_process() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    with pytest.raises(ProcessLookupError):
        pysweep.Target.from_pid(pid)
