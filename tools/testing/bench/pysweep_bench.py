"""What pysweep adds to a dense sweep: 65,536 single-page ranges by default.

``host`` needs no kernel support.  It fills a ``struct touched_range``
array as a sweep of RANGES single-page ranges would, then times what
happens to it after the system call returns:

  per-object   the construction pysweep used to do: one validated ``Range``
               per entry, joined at call boundaries, then a ``SweepResult``
               over the tuple of them
  result       the array-backed ``SweepResult`` built from the filled
               buffer (one copy, the join check, the sanity checks)
  Target.sweep the whole of ``Target.sweep()`` around a stand-in for the
               system call that copies the filled entries into its vec, in
               one call and in calls of ``DEFAULT_BATCH``; "stand-in copy"
               is the stand-in's own share
  .ranges etc. what the lazy accessors cost when a caller asks

``guest`` needs the patched kernel (run it in the plain guest, for
instance ``harness run --flavour plain -- python3 tools/testing/bench/pysweep_bench.py
guest``).  It writes every other page of a tracked mapping and times
``Tracker.sweep()`` against the bare ``touched_sweep()`` call with room for
every range, test-only (``peek``) and clearing (``clear``, the pages written
again, untimed, before each sweep); the target is a ratio of at most 2.

Both print a table, or with ``--json`` one JSON object, medians over
``--runs`` repetitions in microseconds.
"""

from __future__ import annotations

import argparse
import array
import json
import mmap
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import pysweep
from pysweep import DEFAULT_BATCH, PAGE_SIZE, Op, Range, RangeFlag, SweepFlag, _syscall
from pysweep._syscall import ffi

# The raw call, with nothing of pysweep around it.
touched_sweep: Callable[[int, Any], int] = _syscall.lib.pysweep_touched_sweep

RANGES = 1 << 16
BASE = 1 << 40


# ------------------------------------------------------------ the old path


def _old_as_tuple(ranges: Iterable[Range]) -> tuple[Range, ...]:
    return tuple(ranges)


@attrs.frozen
class OldSweepResult:
    """The result type as it was: a validated tuple of Range objects."""

    ranges: tuple[Range, ...] = attrs.field(
        converter=_old_as_tuple,
        validator=attrs.validators.deep_iterable(attrs.validators.instance_of(Range)),
    )
    walk_end: int = attrs.field()


def old_build(vec: Any, count: int, walk_end: int) -> OldSweepResult:
    """What ``Target.sweep()`` did with the entries of one call."""
    ranges: list[Range] = []
    for entry in vec[0:count]:
        found = Range(entry.start, entry.end, entry.flags)
        last = ranges[-1] if ranges else None
        if last is not None and last.end == found.start and last.flags == found.flags:
            ranges[-1] = Range(last.start, found.end, last.flags)
        else:
            ranges.append(found)
    return OldSweepResult(ranges, walk_end)


# ------------------------------------------------------------ measuring


def median_us(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter_ns()
        work()
        times.append(time.perf_counter_ns() - began)
    return statistics.median(times) / 1000


def filled(count: int) -> Any:
    """``struct touched_range[count]`` as a sweep of single-page ranges, a page apart, reports them."""
    vec = ffi.new("struct touched_range[]", count)
    words = array.array("Q")
    for i in range(count):
        start = BASE + 2 * i * PAGE_SIZE
        words.extend((start, start + PAGE_SIZE, int(RangeFlag.TOUCHED)))
    ffi.memmove(vec, words.tobytes(), len(words) * words.itemsize)
    return vec


class StandIn:
    """Answers ``touched_sweep(SWEEP)`` by copying entries of ``source`` into the caller's vec."""

    def __init__(self, source: Any, count: int, window_end: int) -> None:
        self.source = source
        self.count = count
        self.window_end = window_end
        self.entry = ffi.sizeof("struct touched_range")

    def __call__(self, pidfd: int, *, op: int, start: int, vec: int, vec_len: int, **_: object) -> tuple[int, int]:
        first = (start - BASE) // (2 * PAGE_SIZE)
        count = min(vec_len, self.count - first)
        ffi.memmove(ffi.cast("struct touched_range *", vec), self.source + first, count * self.entry)
        done = first + count == self.count
        return count, self.window_end if done else int(self.source[first + count].start)


def host(count: int, runs: int) -> dict[str, float]:
    vec = filled(count)
    window_end = BASE + 2 * count * PAGE_SIZE
    expected = pysweep.SweepResult._from_spans(
        ((BASE + 2 * i * PAGE_SIZE, BASE + (2 * i + 1) * PAGE_SIZE) for i in range(count)), window_end
    )
    found: dict[str, float] = {}

    found["per-object"] = median_us(lambda: old_build(vec, count, window_end), max(3, runs // 4))

    def result() -> pysweep.SweepResult:
        entries: array.array[int] = array.array("Q")
        pysweep._append_joined(entries, memoryview(ffi.buffer(vec, count * ffi.sizeof("struct touched_range"))), BASE)
        return pysweep.SweepResult._from_entries(entries, window_end)

    assert result() == expected
    found["result"] = median_us(result, runs)

    # Target.sweep() around the stand-in, as Tracker.sweep() runs it.
    stand_in = StandIn(vec, count, window_end)
    scratch = ffi.new("struct touched_range[]", count)
    found["stand-in copy"] = median_us(
        lambda: stand_in(0, op=Op.SWEEP, start=BASE, vec=int(ffi.cast("uintptr_t", scratch)), vec_len=count), runs
    )
    _syscall._probe_result = _syscall.ProbeResult(True, True, 0, "stand-in", os.uname().release)
    # Target.sweep() issues the call through the package's name for it.
    vars(pysweep)["call"] = stand_in
    with pysweep.Target.from_pid(os.getpid()) as target:
        for batch in (count, DEFAULT_BATCH):
            assert target.sweep(BASE, window_end, batch=batch) == expected
            found[f"Target.sweep, batch {batch}"] = median_us(lambda batch=batch: target.sweep(BASE, window_end, batch=batch), runs)  # type: ignore[misc]
    found["len()"] = median_us(lambda: len(expected), runs)
    found[".pages"] = median_us(lambda: expected.pages, runs)
    found["iterate (start, end, flags)"] = median_us(lambda: sum(1 for _ in expected), runs)
    found[".spans()"] = median_us(lambda: list(expected.spans()), runs)
    found[".select(lacking=GONE)"] = median_us(lambda: expected.select(lacking=RangeFlag.GONE), runs)
    found[".ranges (first use)"] = median_us(
        lambda: pysweep.SweepResult._from_entries(expected._entries, window_end).ranges, max(3, runs // 4)
    )
    return found


# ------------------------------------------------------------ the guest


# The clearing sweeps' samples of the last guest() run, in microseconds.
clearing_samples: dict[str, list[float]] = {}


def guest(count: int, runs: int) -> dict[str, float]:
    probe = pysweep.probe()
    if not probe.implemented:
        raise SystemExit(f"pysweep_bench guest: {probe.reason}")
    length = 2 * count * PAGE_SIZE
    memory = mmap.mmap(-1, length, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    start = int(ffi.cast("uintptr_t", ffi.from_buffer(memory)))
    end = start + length

    def write() -> None:
        for offset in range(0, length, 2 * PAGE_SIZE):
            memory[offset] = 1

    found: dict[str, float] = {}
    with pysweep.Tracker(os.getpid(), backend="touched_sweep") as tracker:
        tracker.track(start, end)
        write()
        pidfd = os.pidfd_open(os.getpid())
        vec = ffi.new("struct touched_range[]", count)
        args = ffi.new("struct touched_sweep_args *")
        args.size = ffi.sizeof("struct touched_sweep_args")
        args.op = Op.SWEEP
        args.start = start
        args.end = end
        args.vec = int(ffi.cast("uintptr_t", vec))
        args.vec_len = count

        def bare(flags: int) -> int:
            args.flags = flags
            reported = touched_sweep(pidfd, args)
            if reported != count or args.walk_end != end:
                raise SystemExit(f"pysweep_bench guest: the sweep reported {reported} ranges up to {args.walk_end:#x}")
            return reported

        def wrapped(clear: bool) -> int:
            reported = len(tracker.sweep(start, end, clear=clear))
            if reported != count:
                raise SystemExit(f"pysweep_bench guest: Tracker.sweep reported {reported} ranges")
            return reported

        found["bare peek"] = median_us(lambda: bare(0), runs)
        found["Tracker.sweep peek"] = median_us(lambda: wrapped(False), runs)
        # Clearing sweeps take turns, each after the pages were written again.
        clearing: dict[str, Callable[[], int]] = {
            "bare clear": lambda: bare(int(SweepFlag.CLEAR)),
            "Tracker.sweep clear": lambda: wrapped(True),
        }
        times: dict[str, list[int]] = {name: [] for name in clearing}
        for _ in range(runs):
            for name, sweep in clearing.items():
                write()
                began = time.perf_counter_ns()
                sweep()
                times[name].append(time.perf_counter_ns() - began)
        for name, taken in times.items():
            found[name] = statistics.median(taken) / 1000
            clearing_samples[name] = [ns / 1000 for ns in taken]
        os.close(pidfd)
    found["ratio peek"] = found["Tracker.sweep peek"] / found["bare peek"]
    found["ratio clear"] = found["Tracker.sweep clear"] / found["bare clear"]
    memory.close()
    return found


def bench_records(count: int) -> list[dict[str, object]]:
    """The clearing sweeps of guest() as measurement records of the
    benchmark's JSON lines (tools/testing/harness/bench.py reads them):
    scenario "binding", the bare call as touched_sweep and Tracker.sweep()
    as pysweep."""
    return [
        {
            "type": "measurement",
            "scenario": "binding",
            "mechanism": mechanism,
            "tracked_mib": round(2 * count * PAGE_SIZE / (1 << 20), 3),
            "touched_pages": count,
            "writes": count,
            "vmas": 1,
            "thp": False,
            "sweep_us": [round(us, 3) for us in clearing_samples[name]],
            "first_write_ns": [],
        }
        for mechanism, name in (("touched_sweep", "bare clear"), ("pysweep", "Tracker.sweep clear"))
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("where", choices=("host", "guest"))
    parser.add_argument("--ranges", type=int, default=RANGES, help="single-page ranges swept (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=21, help="repetitions (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    parser.add_argument(
        "--jsonl", type=Path, metavar="FILE", help="guest: also append the clearing sweeps to FILE as the benchmark's JSON lines"
    )
    args = parser.parse_args(argv)
    if args.jsonl and args.where != "guest":
        parser.error("--jsonl goes with guest")
    found = host(args.ranges, args.runs) if args.where == "host" else guest(args.ranges, args.runs)
    if args.jsonl:
        with open(args.jsonl, "a") as out:
            out.writelines(json.dumps(record) + "\n" for record in bench_records(args.ranges))
    if args.json:
        print(json.dumps({"where": args.where, "ranges": args.ranges, "runs": args.runs, "us": found}))
        return 0
    print(f"{args.where}: {args.ranges} single-page ranges, median of {args.runs} runs")
    width = max(map(len, found))
    for name, value in found.items():
        shown = f"{value:10.2f}" if name.startswith("ratio") else f"{value:10.1f} us"
        print(f"  {name:{width}}  {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
