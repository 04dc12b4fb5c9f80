"""The one argument contract of every backend, checked by Tracker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import ClassVar

import pytest

import pysweep
from pysweep.tracker import Backend, Guarantees, register_backend, unregister_backend

P = pysweep.PAGE_SIZE


class RecordingBackend(Backend):
    """A backend that records what reaches it, to show bad input never does."""

    name = "recording"
    guarantees = Guarantees(
        remote=True,
        atomic=True,
        range_clear=True,
        reports_gone=False,
        reports_zaps=False,
        follows_mremap=False,
        reports_new_mappings=False,
        cost="nothing",
    )

    calls: ClassVar[list[tuple[str, int, int]]] = []

    def track(self, start: int, end: int) -> None:
        self.calls.append(("track", start, end))

    def untrack(self, start: int, end: int) -> None:
        self.calls.append(("untrack", start, end))

    def sweep(self, start: int, end: int, *, clear: bool = True, max_ranges: int | None = None) -> pysweep.SweepResult:
        self.calls.append(("sweep", start, end))
        return pysweep.SweepResult([], end)


@pytest.fixture(params=["recording", "pagemap_scan"])
def tracker(request: pytest.FixtureRequest) -> Iterator[pysweep.Tracker]:
    if request.param == "recording":
        register_backend("recording", RecordingBackend)
        RecordingBackend.calls = []
    try:
        try:
            opened = pysweep.Tracker(backend=request.param)
        except pysweep.BackendUnavailableError as exc:
            pytest.skip(str(exc))
        with opened:
            yield opened
    finally:
        if request.param == "recording":
            unregister_backend("recording")


BAD_WINDOWS = [
    (P + 1, 2 * P, ValueError, r"start 0x\w+ is not page aligned"),
    (P, 2 * P - 1, ValueError, r"end 0x\w+ is not page aligned"),
    (2 * P, P, ValueError, r"window 0x2000-0x1000 is reversed" if P == 0x1000 else "reversed"),
    (-P, P, ValueError, "not a 64-bit address"),
    (0, 1 << 64, ValueError, "not a 64-bit address"),
    (1.0, P, TypeError, "start must be an int, not float"),
    (0, True, TypeError, "end must be an int, not bool"),
]


@pytest.mark.parametrize(("start", "end", "error", "message"), BAD_WINDOWS)
@pytest.mark.parametrize("method", ["track", "untrack", "sweep"])
def test_bad_windows_never_reach_a_backend(
    tracker: pysweep.Tracker, method: str, start: object, end: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        getattr(tracker, method)(start, end)
    assert RecordingBackend.calls == [] or tracker.name != "recording"


@pytest.mark.parametrize(("max_ranges", "error"), [(0, ValueError), (-3, ValueError), (True, TypeError), (2.5, TypeError)])
def test_bad_max_ranges_never_reach_a_backend(tracker: pysweep.Tracker, max_ranges: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_ranges"):
        tracker.sweep(0, P, max_ranges=max_ranges)  # type: ignore[arg-type]
    assert RecordingBackend.calls == [] or tracker.name != "recording"


def test_good_input_passes_through() -> None:
    register_backend("recording", RecordingBackend)
    RecordingBackend.calls = []
    try:
        with pysweep.Tracker(backend="recording") as tracker:
            tracker.track(P, 3 * P)
            tracker.sweep(2 * P, 2 * P, max_ranges=1)  # an empty window is fine
            tracker.untrack(P, 3 * P)
    finally:
        unregister_backend("recording")
    assert RecordingBackend.calls == [("track", P, 3 * P), ("sweep", 2 * P, 2 * P), ("untrack", P, 3 * P)]


def test_the_binding_uses_the_same_max_ranges_check() -> None:
    with pytest.raises(TypeError, match="max_ranges must be an int or None, not bool"):
        pysweep.check_max_ranges(True)
    with pysweep.Target.from_pid(os.getpid()) as own, pytest.raises(ValueError, match="at least 1, not 0"):
        own.sweep(0, P, max_ranges=0)


def test_track_mappings_tracks_what_the_rules_allow() -> None:
    register_backend("recording", RecordingBackend)
    RecordingBackend.calls = []
    try:
        with pysweep.Tracker(backend="recording") as tracker:
            done = tracker.track_mappings()
    finally:
        unregister_backend("recording")
    by_path = {m.path: reason for m, reason in done.skipped}
    assert "stack" in by_path["[stack]"] and "kernel-provided" in by_path["[vdso]"]
    assert done.tracked and all(m.writable for m in done.tracked)
    assert RecordingBackend.calls == [("track", m.start, m.end) for m in done.tracked]
    assert done.tracked_bytes == sum(m.end - m.start for m in done.tracked) and done.already == 0
