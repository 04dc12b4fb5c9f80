"""The ``pysweep`` command: track a process, sweep it, watch it.

``pysweep track PID`` opts a process into tracking, ``pysweep sweep PID``
lists the memory it wrote since the last sweep, ``pysweep watch PID`` sweeps
it in a loop and prints one line per round, ``pysweep untrack PID`` ends the
tracking and ``pysweep backends [PID]`` says which backends work here.
:func:`main` runs the command and returns its exit status: 0 on success, 1
on an error (one ``pysweep: ...`` line on stderr), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pysweep import PAGE_SIZE, RangeFlag, SweepError, SweepResult, __version__
from pysweep.maps import READ_ONLY_REASON, Mapping, mapped_window, read_maps
from pysweep.tracker import BackendUnavailableError, Tracker, available_backends, backend_names

if TYPE_CHECKING:
    from pysweep.dump import RoundStats

__all__ = ["CliError", "build_parser", "main", "parse_range"]

#: The backend whose tracking lives in the kernel, so that it outlives one command.
KERNEL_BACKEND = "touched_sweep"


BACKEND_HELP = {
    "touched_sweep": (
        "(default where present) the touched_sweep(2) system call of the patched kernel.  Watches any process you may ptrace; "
        "a sweep costs time in proportion to the memory written, not to the memory tracked; reports "
        "unmapped and moved ranges as GONE.  Its tracking lives in the kernel, so `track` in one "
        "command and `sweep` in the next work together.  Use it whenever the kernel has it."
    ),
    "pagemap_scan": (
        "PAGEMAP_SCAN over userfaultfd write-protection (Linux 6.7+).  Watches only the process that "
        "set it up, so it cannot watch another PID; it is there for programs that use pysweep on "
        "themselves."
    ),
    "soft_dirty": (
        "/proc/PID/clear_refs and the soft-dirty bit of /proc/PID/pagemap (mainline kernels with "
        "CONFIG_MEM_SOFT_DIRTY).  Watches any process you may ptrace, but reading and clearing are two "
        "steps, so it is exact only while the target is stopped; a sweep costs time in proportion to "
        "the memory tracked.  The fallback on mainline kernels."
    ),
}

DESCRIPTION = """\
Find the memory a running process wrote.  pysweep opts address ranges of a
process into write tracking, then sweeps them: a sweep lists the ranges
written since the previous sweep and, unless told otherwise, clears them so
that the next sweep starts from scratch.  This is what a pre-copy dumper
(CRIU pre-dump, live migration, incremental snapshots) needs each round.

A process must be tracked before a sweep can report anything.  With the
touched_sweep backend the tracking lives in the kernel: run `pysweep track
PID` once, then `pysweep sweep PID` as often as you like, from any process
allowed to ptrace the target.  The other backends keep their tracking
inside the pysweep process, so `sweep` and `watch` track the window
themselves when they start and drop the tracking when they exit; for them
`watch` is the useful command.

Addresses are hex with 0x or decimal, and page aligned; START-END means
[START,END): END is not included.  Without --range, a command covers every mapping of the
target, from its lowest to its highest mapped address."""

EPILOG = """\
examples:
  pysweep track 1234              track every writable mapping of pid 1234
  pysweep sweep 1234              list what it wrote since, and clear that
  pysweep sweep 1234 --no-clear --json
                                  look without clearing, as JSON
  pysweep track 1234 --range 0x7f3a00000000-0x7f3a00100000
  pysweep sweep 1234 --range 0x7f3a00000000-0x7f3a00100000
  pysweep watch 1234 --interval 0.5
                                  one line per round until Ctrl-C
  pysweep watch 1234 --backend soft_dirty --rounds 10
  pysweep untrack 1234            stop tracking pid 1234
  pysweep backends 1234           which backends work for pid 1234, and why not

exit status: 0 success, 1 error (one line on stderr), 2 bad usage.
`pysweep COMMAND --help` describes each command."""


class CliError(Exception):
    """An expected failure, reported as ``pysweep: <message>`` with exit status 1."""


# Addresses and sizes.


def _hex(address: int) -> str:
    return f"{address:#x}"


def human_size(size: int) -> str:
    """``4096`` -> ``"4 KiB"``, ``1572864`` -> ``"1.5 MiB"``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    if unit == "B" or value == int(value):
        return f"{int(value)} {unit}"
    return f"{value:.1f} {unit}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _parse_address(text: str) -> int:
    text = text.strip()
    try:
        if text.lower().startswith("0x"):
            return int(text[2:], 16)
        if text.isdigit():
            return int(text, 10)
    except ValueError:
        pass
    hint = "; write hex addresses with 0x" if text and all(c in "0123456789abcdefABCDEF" for c in text) else ""
    raise argparse.ArgumentTypeError(f"{text!r} is not an address (hex with 0x, or decimal){hint}")


def parse_range(text: str) -> tuple[int, int]:
    """Parse ``START-END`` (hex with ``0x`` or decimal, page aligned) into ``(start, end)``."""
    start_text, dash, end_text = text.partition("-")
    if not dash or not start_text.strip() or not end_text.strip():
        raise argparse.ArgumentTypeError(f"invalid range {text!r}: write START-END, e.g. 0x7f3a00000000-0x7f3a00100000")
    start, end = _parse_address(start_text), _parse_address(end_text)
    for address, written in ((start, start_text.strip()), (end, end_text.strip())):
        if address >= 1 << 64:
            raise argparse.ArgumentTypeError(f"{written} does not fit in 64 bits")
        if address % PAGE_SIZE:
            raise argparse.ArgumentTypeError(f"{written} is not page aligned (pages are {PAGE_SIZE:#x} bytes)")
    if end <= start:
        raise argparse.ArgumentTypeError(f"invalid range {text!r}: END must be above START")
    return start, end


def _parse_pid(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a process id")
    return int(text)


def _parse_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _positive(what: str) -> Callable[[str], int]:
    """An argument type: a positive whole number of ``what``."""

    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or int(text) < 1:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of {what}")
        return int(text)

    parse.__name__ = what  # argparse names the type in its error messages
    return parse


_parse_rounds = _positive("rounds")
_parse_pages_a_second = _positive("pages a second")

# Binary size suffixes: 1K, 1KiB, 1KB and 1k are all 1,024; 1B is a byte.
_SIZE_UNITS = {"b": 0, "k": 10, "m": 20, "g": 30, "t": 40}
_SIZE = re.compile(r"([0-9]+)\s*(b|[kmgt](?:i?b)?)?", re.IGNORECASE | re.ASCII)


def _size_parser(unit_shift: int, unit: str) -> Callable[[str], int]:
    """An argument type: a positive size, a number of ``unit`` (2**``unit_shift``
    bytes) or a number with a binary suffix (``512K``, ``1MiB``, ``2G``), in ``unit``."""

    def parse(text: str) -> int:
        match = _SIZE.fullmatch(text.strip())
        size = 0
        if match:
            # No suffix: a number of the unit.
            size = int(match[1]) << (_SIZE_UNITS[match[2][0].lower()] if match[2] else unit_shift)
        if size < 1 << unit_shift or size % (1 << unit_shift):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a positive size in {unit}: a whole number, or one with a binary suffix (512K, 1M, 1MiB, 2G)"
            )
        return size >> unit_shift

    parse.__name__ = f"size in {unit}"
    return parse


_parse_bytes = _size_parser(0, "bytes")
_parse_mib = _size_parser(20, "MiB")


def _parse_mib_or_zero(text: str) -> int:
    match = _SIZE.fullmatch(text.strip())
    return 0 if match and int(match[1]) == 0 else _parse_mib(text)


# The target's mappings.


def _proc_path(pid: int, name: str) -> str:
    return f"/proc/{pid}/{name}"


@dataclass
class TrackReport:
    """What tracking a window did."""

    tracked: list[Mapping] = field(default_factory=list)
    already: int = 0
    skipped: list[tuple[Mapping, str]] = field(default_factory=list)
    # The --range tracked, which need not be one mapping.
    window: tuple[int, int] | None = None

    @property
    def tracked_bytes(self) -> int:
        return sum(len(m) for m in self.tracked)

    def as_json(self) -> dict[str, Any]:
        return {
            "tracked": [{"start": _hex(m.start), "end": _hex(m.end), "name": m.path} for m in self.tracked],
            "tracked_bytes": self.tracked_bytes,
            "already_tracked": self.already,
            "skipped": [
                {"start": _hex(m.start), "end": _hex(m.end), "name": m.path, "reason": reason} for m, reason in self.skipped
            ],
        }

    def summary(self) -> str:
        if self.window is not None:
            return f"tracked {self.window[0]:#x}-{self.window[1]:#x} ({human_size(self.tracked_bytes)})"
        line = f"tracked {_plural(len(self.tracked), 'mapping')} ({human_size(self.tracked_bytes)})"
        if self.already:
            line += f", {self.already} of them tracked already"
        if self.skipped:
            line += f"; skipped {len(self.skipped)}"
        return line

    def details(self) -> list[str]:
        """One line per skipped mapping (read-only ones summed up in one), columns aligned."""
        listed = [(m, reason) for m, reason in self.skipped if reason != READ_ONLY_REASON]
        rows = [(f"{m.start:#x}-{m.end:#x}", m.perms, human_size(len(m)), m.path, reason) for m, reason in listed]
        widths = [max((len(row[i]) for row in rows), default=0) for i in range(4)]
        lines = [
            f"  skipped {row[0]:{widths[0]}}  {row[1]:{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]:{widths[3]}}  {row[4]}"
            for row in rows
        ]
        read_only = [m for m, reason in self.skipped if reason == READ_ONLY_REASON]
        if read_only:
            size = human_size(sum(len(m) for m in read_only))
            lines.append(
                f"  skipped {_plural(len(read_only), 'read-only mapping')} ({size}): not writable now; --read-only tracks them too"
            )
        return lines


def track_window(tracker: Tracker, pid: int, window: tuple[int, int] | None, *, read_only: bool = False) -> TrackReport:
    """Track ``window``, or, without one, every eligible mapping of ``pid`` on its own."""
    if window is not None:
        tracker.track(*window)
        return TrackReport(tracked=[Mapping(window[0], window[1], "")], window=window)
    done = tracker.track_mappings(read_only=read_only)
    if not done.tracked:
        raise CliError(f"pid {pid} has no mapping that can be tracked")
    return TrackReport(tracked=list(done.tracked), already=done.already, skipped=list(done.skipped))


def untrack_window(tracker: Tracker, window: tuple[int, int]) -> None:
    tracker.untrack(*window)


# Sweep results.


@functools.cache
def _flag_names(flags: int) -> tuple[str, ...]:
    return tuple(str(member.name) for member in RangeFlag if member & flags)


def flag_names(flags: int) -> list[str]:
    """``TOUCHED|OVERREPORTED`` -> ``["TOUCHED", "OVERREPORTED"]``."""
    return list(_flag_names(int(flags)))


@dataclass(frozen=True)
class Totals:
    """What a sweep found, counted."""

    ranges: int
    touched_ranges: int
    touched_pages: int
    gone_ranges: int
    gone_pages: int
    overreported_pages: int

    @classmethod
    def of(cls, result: SweepResult) -> Totals:
        touched = result.select(having=RangeFlag.TOUCHED, lacking=RangeFlag.GONE)
        gone = result.select(having=RangeFlag.GONE)
        return cls(
            ranges=len(result),
            touched_ranges=len(touched),
            touched_pages=touched.pages,
            gone_ranges=len(gone),
            gone_pages=gone.pages,
            overreported_pages=touched.select(having=RangeFlag.OVERREPORTED).pages,
        )

    def as_json(self) -> dict[str, int]:
        return {
            "ranges": self.ranges,
            "touched_ranges": self.touched_ranges,
            "touched_pages": self.touched_pages,
            "touched_bytes": self.touched_pages * PAGE_SIZE,
            "gone_ranges": self.gone_ranges,
            "gone_pages": self.gone_pages,
            "gone_bytes": self.gone_pages * PAGE_SIZE,
            "overreported_pages": self.overreported_pages,
        }

    def sentence(self) -> str:
        touched = self.touched_pages * PAGE_SIZE
        line = f"{_plural(self.touched_ranges, 'touched range')}, {_plural(self.touched_pages, 'page')} ({human_size(touched)})"
        if self.overreported_pages:
            line += f", {self.overreported_pages} of them overreported"
        gone = self.gone_pages * PAGE_SIZE
        line += f"; {_plural(self.gone_ranges, 'gone range')}"
        if self.gone_ranges:
            line += f", {_plural(self.gone_pages, 'page')} ({human_size(gone)})"
        return line


def range_json(start: int, end: int, flags: int) -> dict[str, Any]:
    """One ``(start, end, flags)`` entry of a result, as ``--json`` prints it."""
    return {
        "start": _hex(start),
        "end": _hex(end),
        "flags": flag_names(flags),
        "pages": (end - start) // PAGE_SIZE,
        "bytes": end - start,
    }


def result_table(result: SweepResult) -> list[str]:
    """The ranges of ``result`` as table rows under a header, then a total line."""
    rows = [
        (_hex(start), _hex(end), human_size(end - start), str((end - start) // PAGE_SIZE), "|".join(_flag_names(flags)))
        for start, end, flags in result
    ]
    header = ("start", "end", "size", "pages", "flags")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]), row[3].rjust(widths[3]), row[4]]
        lines.append("  ".join(cells))
    lines.append(f"total: {Totals.of(result).sentence()}")
    return lines


# Commands.


def _write(stream: TextIO, line: str) -> None:
    print(line, file=stream, flush=True)


def _require_process(pid: int) -> None:
    if not os.path.exists(_proc_path(pid, "")):
        raise CliError(f"no process with pid {pid}")


def _open_tracker(pid: int, backend: str) -> Tracker:
    try:
        return Tracker(pid, backend=backend)
    except ProcessLookupError:
        raise CliError(f"no process with pid {pid}") from None


def _in_process(tracker: Tracker) -> bool:
    return not tracker.guarantees.persistent


def cmd_track(args: argparse.Namespace) -> int:
    pid: int = args.pid
    _require_process(pid)
    with _open_tracker(pid, KERNEL_BACKEND) as tracker:
        report = track_window(tracker, pid, args.range, read_only=args.read_only)
    if args.json:
        _write(sys.stdout, json.dumps({"pid": pid, "backend": KERNEL_BACKEND, **report.as_json()}, indent=2))
        return 0
    _write(sys.stdout, f"pid {pid}: {report.summary()}")
    for line in report.details():
        _write(sys.stdout, line)
    return 0


def cmd_untrack(args: argparse.Namespace) -> int:
    pid: int = args.pid
    _require_process(pid)
    window = args.range or mapped_window(pid)
    with _open_tracker(pid, KERNEL_BACKEND) as tracker:
        untrack_window(tracker, window)
    _write(sys.stdout, f"pid {pid}: untracked {window[0]:#x}-{window[1]:#x}")
    return 0


def _in_process_note(tracker: Tracker) -> str:
    return (
        f"note: the {tracker.name} backend keeps its tracking inside this pysweep process, so this sweep "
        "sees only the writes since it tracked the window a moment ago; `pysweep watch` shows writes over time"
    )


def _nothing_tracked(pid: int, window: tuple[int, int]) -> bool:
    # Only a hint: touched_sweep shows tracked VMAs as "tt" in smaps.
    try:
        mappings = read_maps(pid, with_flags=True)
    except CliError:
        return False
    inside = [m for m in mappings if m.start < window[1] and window[0] < m.end and m.vmflags is not None]
    return bool(inside) and not any(m.tracked for m in inside)


def cmd_sweep(args: argparse.Namespace) -> int:
    pid: int = args.pid
    _require_process(pid)
    window: tuple[int, int] = args.range or mapped_window(pid)
    clear = not args.no_clear
    with _open_tracker(pid, args.backend) as tracker:
        report = None
        if args.track or _in_process(tracker):
            report = track_window(tracker, pid, args.range, read_only=args.read_only)
        began = time.perf_counter()
        result = tracker.sweep(*window, clear=clear)
        elapsed_ms = (time.perf_counter() - began) * 1000
        backend = tracker.name
        in_process = _in_process(tracker)
        if in_process and not args.json:
            _write(sys.stderr, _in_process_note(tracker))
    if args.json:
        document = {
            "pid": pid,
            "backend": backend,
            "page_size": PAGE_SIZE,
            "window": {"start": _hex(window[0]), "end": _hex(window[1])},
            "clear": clear,
            "walk_end": _hex(result.walk_end),
            "sweep_ms": round(elapsed_ms, 3),
            "tracked": None if report is None else report.as_json(),
            "ranges": [range_json(*entry) for entry in result],
            "totals": Totals.of(result).as_json(),
        }
        _write(sys.stdout, json.dumps(document, indent=2))
        return 0
    if report is not None:
        _write(sys.stdout, f"pid {pid}: {report.summary()}")
    state = "cleared" if clear else "not cleared"
    _write(sys.stdout, f"pid {pid}, backend {backend}, window {window[0]:#x}-{window[1]:#x}, {state}, {elapsed_ms:.2f} ms")
    if result.walk_end != window[1]:
        _write(sys.stdout, f"(the sweep stopped at {result.walk_end:#x})")
    for line in result_table(result):
        _write(sys.stdout, line)
    if len(result) == 0 and not in_process and report is None and _nothing_tracked(pid, window):
        _write(sys.stderr, f"note: nothing in the window is tracked; `pysweep track {pid}` opts the process in")
    return 0


@dataclass
class WatchStats:
    rounds: int = 0
    pages: int = 0
    gone: int = 0
    sweep_ms_total: float = 0.0
    sweep_ms_max: float = 0.0

    def add(self, totals: Totals, sweep_ms: float) -> None:
        self.rounds += 1
        self.pages += totals.touched_pages
        self.gone += totals.gone_ranges
        self.sweep_ms_total += sweep_ms
        self.sweep_ms_max = max(self.sweep_ms_max, sweep_ms)

    def sentence(self) -> str:
        # The rounds are in the sentence this one ends ("done after 3 rounds").
        line = f"{_plural(self.pages, 'page')} ({human_size(self.pages * PAGE_SIZE)}) touched, {_plural(self.gone, 'range')} gone"
        if self.rounds:
            line += f", sweeps took {self.sweep_ms_total / self.rounds:.2f} ms on average, {self.sweep_ms_max:.2f} ms at most"
        return line

    def as_json(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "touched_pages": self.pages,
            "touched_bytes": self.pages * PAGE_SIZE,
            "gone_ranges": self.gone,
            "sweep_ms_total": round(self.sweep_ms_total, 3),
            "sweep_ms_max": round(self.sweep_ms_max, 3),
        }


WATCH_COLUMNS = ("round", "ranges", "pages", "bytes", "gone", "sweep ms")
_WATCH_WIDTHS = (5, 7, 9, 10, 5, 9)


def _watch_row(cells: Sequence[str]) -> str:
    return " ".join(cell.rjust(width) for cell, width in zip(cells, _WATCH_WIDTHS, strict=True)).rstrip()


def _exited(pidfd: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the process behind ``pidfd`` to exit."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))


def cmd_watch(args: argparse.Namespace) -> int:
    pid: int = args.pid
    _require_process(pid)
    window: tuple[int, int] = args.range or mapped_window(pid)
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise CliError(f"no process with pid {pid}") from None
    try:
        with _open_tracker(pid, args.backend) as tracker:
            return _watch(args, tracker, pidfd, window)
    finally:
        os.close(pidfd)


def _watch(args: argparse.Namespace, tracker: Tracker, pidfd: int, window: tuple[int, int]) -> int:
    pid: int = args.pid
    as_json: bool = args.json
    clear = not args.no_clear
    stats = WatchStats()

    def finish(how: str, sentence: str) -> int:
        if as_json:
            _write(sys.stdout, json.dumps({"end": how, "pid": pid, **stats.as_json()}))
        else:
            _write(sys.stdout, f"{sentence}: {stats.sentence()}")
        return 0

    tracked = args.track or _in_process(tracker)
    try:
        if tracked:
            report = track_window(tracker, pid, args.range, read_only=args.read_only)
            if not as_json:
                _write(sys.stdout, f"pid {pid}: {report.summary()}")
        if not as_json:
            until = f"{args.rounds} rounds" if args.rounds else "Ctrl-C"
            _write(
                sys.stdout,
                f"watching pid {pid} with {tracker.name}, window {window[0]:#x}-{window[1]:#x}, "
                f"every {args.interval:g} s, until {until}" + ("" if clear else ", not clearing"),
            )
            if not tracked:
                _write(sys.stdout, "(sweeping what is tracked already; --track tracks the mapped memory first)")
            _write(sys.stdout, _watch_row(WATCH_COLUMNS))
        began = time.monotonic()
        while args.rounds is None or stats.rounds < args.rounds:
            deadline = began + (stats.rounds + 1) * args.interval
            if _exited(pidfd, deadline - time.monotonic()):
                return finish("exited", f"pid {pid} exited after {_plural(stats.rounds, 'round')}")
            start = time.perf_counter()
            try:
                result = tracker.sweep(*window, clear=clear)
            except OSError as exc:
                if isinstance(exc, ProcessLookupError) or _exited(pidfd, 0):
                    return finish("exited", f"pid {pid} exited after {_plural(stats.rounds, 'round')}")
                raise
            sweep_ms = (time.perf_counter() - start) * 1000
            totals = Totals.of(result)
            stats.add(totals, sweep_ms)
            if as_json:
                line = {
                    "round": stats.rounds,
                    "elapsed_s": round(time.monotonic() - began, 3),
                    "sweep_ms": round(sweep_ms, 3),
                    "totals": totals.as_json(),
                    "ranges": [range_json(*entry) for entry in result],
                }
                _write(sys.stdout, json.dumps(line))
            else:
                cells = (
                    str(stats.rounds),
                    str(totals.touched_ranges),
                    str(totals.touched_pages),
                    human_size(totals.touched_pages * PAGE_SIZE),
                    str(totals.gone_ranges),
                    f"{sweep_ms:.2f}",
                )
                _write(sys.stdout, _watch_row(cells))
    except KeyboardInterrupt:
        return finish("interrupted", f"stopped after {_plural(stats.rounds, 'round')}")
    return finish("rounds", f"done after {_plural(stats.rounds, 'round')}")


def cmd_backends(args: argparse.Namespace) -> int:
    pid: int | None = args.pid
    if pid is not None:
        _require_process(pid)
    try:
        found = available_backends(pid)
    except ProcessLookupError:
        raise CliError(f"no process with pid {pid}") from None
    who = f"pid {pid}" if pid is not None else f"this process (pid {os.getpid()}; give a PID to check another)"
    if args.json:
        document = {
            "pid": pid,
            "backends": {name: None if why is None else str(why) for name, why in found.items()},
            "auto": next((name for name, why in found.items() if why is None), None),
        }
        _write(sys.stdout, json.dumps(document, indent=2))
        # As the text form: 1 if nothing works.
        return 0 if document["auto"] else 1
    _write(sys.stdout, f"backends for {who}:")
    width = max(len(name) for name in found)
    for name, why in found.items():
        _write(sys.stdout, f"  {name:{width}}  {'works' if why is None else 'no: ' + str(why)}")
    chosen = next((name for name, why in found.items() if why is None), None)
    _write(sys.stdout, f"auto picks: {chosen if chosen else 'nothing'}")
    return 0 if chosen else 1


# The parser.


def _backend_help() -> str:
    lines = ["backends (--backend NAME):"]
    present = backend_names()
    for name in [*present, *(known for known in BACKEND_HELP if known not in present)]:
        text = BACKEND_HELP.get(name, "a backend registered with pysweep.tracker.register_backend().")
        if name not in present:
            text += "  (Not in this installation.)"
        lines.append(textwrap.fill(text, 79, initial_indent=f"  {name:14} ", subsequent_indent=" " * 17))
    lines.append(
        textwrap.fill(
            "the first of these that works for the target; `pysweep backends PID` shows which work and why not.",
            79,
            initial_indent=f"  {'auto':14} ",
            subsequent_indent=" " * 17,
        )
    )
    return "\n".join(lines)


def _fill(text: str) -> str:
    """Re-wrap each paragraph of ``text`` to 79 columns."""
    return "\n\n".join(textwrap.fill(" ".join(paragraph.split("\n")), 79) for paragraph in text.split("\n\n"))


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)


def _add_pid(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pid", metavar="PID", type=_parse_pid, help="the process to look at")


def _add_range(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--range",
        metavar="START-END",
        type=parse_range,
        help=f"{what} (hex with 0x or decimal, page aligned; default: every mapping of the target)",
    )


def _add_backend(parser: argparse.ArgumentParser) -> None:
    names = ["auto", *backend_names()]
    parser.add_argument(
        "--backend",
        metavar="NAME",
        choices=names,
        default="auto",
        help=f"how to find written memory: {', '.join(names)} (default: auto; see `pysweep --help`)",
    )


def _add_read_only(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="without --range, also track mappings that are not writable now (mprotect() may make them so)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pysweep`` command."""
    parser = argparse.ArgumentParser(
        prog="pysweep",
        description=_fill(DESCRIPTION) + "\n\n" + _backend_help(),
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    track = commands.add_parser(
        "track",
        help="opt a process into tracking (touched_sweep backend)",
        description=_fill(
            "Opt a process into write tracking with the touched_sweep system call.  The tracking lives in the\n"
            "kernel until `pysweep untrack`, until the memory is unmapped or until the process exits or execs;\n"
            "later `pysweep sweep` and `pysweep watch` commands report what was written since.\n\n"
            "Without --range, every writable mapping is tracked on its own; the main thread's stack\n"
            "([stack]), the kernel-provided mappings ([vdso], [vvar], ...), hugetlb and device mappings\n"
            "cannot be tracked and are listed as skipped, with the reason.  With --range, the whole range must be mapped and\n"
            "trackable, or nothing is tracked.  Tracking what is tracked already keeps its marks.\n\n"
            "The other backends keep their tracking inside the pysweep process, so they have no track\n"
            "command: `pysweep watch` tracks for them."
        ),
        epilog="examples:\n  pysweep track 1234\n  pysweep track 1234 --range 0x7f3a00000000-0x7f3a00100000",
        formatter_class=_Formatter,
    )
    _add_pid(track)
    _add_range(track, "track only [START, END)")
    _add_read_only(track)
    track.add_argument("--json", action="store_true", help="print what was tracked and skipped as JSON")
    track.set_defaults(run=cmd_track)

    untrack = commands.add_parser(
        "untrack",
        help="opt a process out of tracking (touched_sweep backend)",
        description=_fill(
            "Opt a process out of touched_sweep tracking and drop its marks.  Holes and untracked\n"
            "memory in the range are skipped.  Without --range, everything is untracked."
        ),
        epilog="examples:\n  pysweep untrack 1234\n  pysweep untrack 1234 --range 0x7f3a00000000-0x7f3a00100000",
        formatter_class=_Formatter,
    )
    _add_pid(untrack)
    _add_range(untrack, "untrack only [START, END)")
    untrack.set_defaults(run=cmd_untrack)

    sweep = commands.add_parser(
        "sweep",
        help="list the memory written since the last sweep",
        description=_fill(
            "Sweep a process once: list the ranges of tracked memory written since the previous clearing\n"
            "sweep (or since they were tracked), then clear them (unless --no-clear).  Each range is\n"
            "TOUCHED (written: copy it), TOUCHED|OVERREPORTED (written, and will be reported again because\n"
            "its pages are pinned: copy it, expect it again) or GONE (unmapped, moved or mapped over since\n"
            "it was tracked: drop your copy).  Holes and untracked memory in the window are not reported.\n\n"
            "With touched_sweep, the process must have been tracked first (`pysweep track`, or --track\n"
            "here, which also tracks mappings that appeared since).  The other backends keep their tracking\n"
            "inside the pysweep process: sweep tracks the window itself and so reports only what was written\n"
            "while it ran; use `pysweep watch` with them.\n\n"
            "JSON output: an object with pid, backend, page_size, window {start, end}, clear, walk_end,\n"
            "sweep_ms, tracked (what --track tracked, or null), ranges [{start, end, flags, pages, bytes}]\n"
            'and totals.  Addresses are hex strings ("0x7f3a00000000"), since JSON numbers lose precision\n'
            "beyond 2**53 in many parsers; counts and sizes are numbers."
        ),
        epilog=(
            "examples:\n  pysweep sweep 1234\n  pysweep sweep 1234 --no-clear --json\n"
            "  pysweep sweep 1234 --range 0x7f3a00000000-0x7f3a00100000"
        ),
        formatter_class=_Formatter,
    )
    _add_pid(sweep)
    _add_range(sweep, "sweep only [START, END)")
    sweep.add_argument("--no-clear", action="store_true", help="only look: leave the marks for the next sweep")
    sweep.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_backend(sweep)
    sweep.add_argument("--track", action="store_true", help="track the window (or every mapping) before sweeping")
    _add_read_only(sweep)
    sweep.set_defaults(run=cmd_sweep)

    watch = commands.add_parser(
        "watch",
        help="sweep in a loop, one line per round",
        description=_fill(
            "Sweep a process every --interval seconds and print one line per round: the round number,\n"
            "the touched ranges, pages and bytes, the GONE ranges, and how long the sweep took.  Stops on\n"
            "Ctrl-C, when the process exits or after --rounds rounds, with a summary line; the exit\n"
            "status is 0 in all three cases.\n\n"
            "With touched_sweep, watch sweeps what is tracked already; --track tracks the window (or\n"
            "every mapping) first, and the tracking stays when watch ends (`pysweep untrack` ends it).\n"
            "The other backends always track first, and their tracking ends with watch.  Mappings created\n"
            "after tracking are not tracked.\n\n"
            "With --json, each round is one JSON object on a line of its own ({round, elapsed_s, sweep_ms,\n"
            "totals, ranges}, as in `pysweep sweep --json`), and the summary is the last line ({end, pid,\n"
            'rounds, ...}, with end one of "rounds", "exited", "interrupted").'
        ),
        epilog="examples:\n  pysweep watch 1234 --interval 0.5\n  pysweep watch 1234 --backend soft_dirty --rounds 10",
        formatter_class=_Formatter,
    )
    _add_pid(watch)
    watch.add_argument("--interval", metavar="S", type=_parse_interval, default=1.0, help="seconds between sweeps (default: 1)")
    _add_range(watch, "sweep only [START, END)")
    _add_backend(watch)
    watch.add_argument("--rounds", metavar="N", type=_parse_rounds, help="stop after N rounds")
    watch.add_argument("--track", action="store_true", help="track the window (or every mapping) before the first sweep")
    _add_read_only(watch)
    watch.add_argument("--no-clear", action="store_true", help="do not clear: each round reports everything since tracking")
    watch.add_argument("--json", action="store_true", help="one JSON object per line")
    watch.set_defaults(run=cmd_watch)

    dump = commands.add_parser(
        "dump",
        help="copy a running process's memory in rounds (pre-copy), then freeze it briefly",
        description=_fill(
            "Dump the writable anonymous memory of a running process, and the pages of its writable private\n"
            "file mappings it has its own copy of, into DIR, as a pre-copy dumper does.\n"
            "Round 0 copies everything; each later round sweeps and copies only what was written since.  When\n"
            "a round copies less than --converge-bytes, or after --max-rounds rounds, the process is stopped\n"
            "(SIGSTOP, through a pidfd, waiting for every thread), one last round runs, and it is resumed.\n"
            "Other mappings are skipped, with the reason in the manifest.\n\n"
            "DIR gets round-NNN/ for each round and merged/ with the final content, each a manifest.json\n"
            "and a pages.bin.  One line per round shows the pages and bytes copied and the sweep and copy\n"
            "times; the last line the rounds, the bytes and how long the process was frozen.  pagemap_scan\n"
            "cannot watch another process, so dump uses touched_sweep or soft_dirty."
        ),
        epilog="examples:\n  pysweep dump 1234 --out img\n  pysweep dump 1234 --out img --backend soft_dirty --max-rounds 4",
        formatter_class=_Formatter,
    )
    _add_pid(dump)
    dump.add_argument("--out", metavar="DIR", required=True, type=Path, help="the image directory (created)")
    _add_backend(dump)
    dump.add_argument(
        "--max-rounds", metavar="N", type=_parse_rounds, default=8, help="rounds before the frozen one, at most (default: 8)"
    )
    dump.add_argument(
        "--converge-bytes",
        metavar="B",
        type=_parse_bytes,
        default=1 << 20,
        help="freeze once a round copies less than B bytes; K, M and G suffixes are binary (default: 1M)",
    )
    dump.add_argument(
        "--leave-stopped", action="store_true", help="leave the process stopped after the last round (for `pysweep verify`)"
    )
    dump.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object at the end instead of a line per round: pid, backend, out, "
        "rounds (round, pages, bytes, sweep_s, copy_s, frozen), bytes, freeze_s, "
        "sweep_stops_s and peak_rss_bytes, this process's peak resident memory",
    )
    dump.set_defaults(run=cmd_dump)

    verify_cmd = commands.add_parser(
        "verify",
        help="compare a dump with the process's memory, byte for byte",
        description=_fill(
            "Stop PID, compare DIR's merged image with its memory byte for byte, and resume it (a process\n"
            "that was stopped already stays stopped).  Exit status 0 if they match, 1 otherwise, with the\n"
            "first mismatching pages listed."
        ),
        epilog="example:\n  pysweep dump 1234 --out img --leave-stopped && pysweep verify img 1234 && kill -CONT 1234",
        formatter_class=_Formatter,
    )
    verify_cmd.add_argument("dir", metavar="DIR", type=Path, help="an image written by `pysweep dump`")
    _add_pid(verify_cmd)
    verify_cmd.add_argument(
        "--json", action="store_true", help="print {pid, image, matches, mismatched_pages (hex addresses)} as JSON"
    )
    verify_cmd.set_defaults(run=cmd_verify)

    demo = commands.add_parser(
        "demo",
        help="dump a busy process the classic way and pre-copy, and compare the freezes",
        description=_fill(
            "Start a workload (python3 -m pysweep.workload) with --size MiB of memory that it keeps writing,\n"
            "--rate random pages a second, while mapping and unmapping a small mapping now and then.  Dump\n"
            "it twice: the classic way (stop it, copy everything, resume it) and pre-copy (`pysweep dump`:\n"
            "rounds while it runs, then a short freeze).  Check the pre-copy image byte for byte while the\n"
            "workload is stopped, and print both freeze times and what each copied while it was frozen.\n"
            "Then, unless --memory-size is 0, dump a workload of --memory-size MiB with `pysweep dump` in a\n"
            "process of its own, and print that process's peak resident memory: the image streams to disk."
        ),
        epilog="examples:\n  pysweep demo\n  pysweep demo --size 256 --rate 5000 --backend soft_dirty",
        formatter_class=_Formatter,
    )
    demo.add_argument(
        "--size",
        metavar="MIB",
        type=_parse_mib,
        default=128,
        help="the workload's memory, in MiB, or with a suffix: 1G (default: 128)",
    )
    demo.add_argument(
        "--rate", metavar="W", type=_parse_pages_a_second, default=2000, help="pages the workload writes a second (default: 2000)"
    )
    _add_backend(demo)
    demo.add_argument(
        "--max-rounds",
        metavar="N",
        type=_parse_rounds,
        default=8,
        help="pre-copy rounds before the frozen one, at most (default: 8)",
    )
    demo.add_argument(
        "--converge-bytes",
        metavar="B",
        type=_parse_bytes,
        default=1 << 20,
        help="freeze once a round copies less than B bytes; K, M and G suffixes are binary (default: 1M)",
    )
    demo.add_argument("--out", metavar="DIR", type=Path, help="keep the images here (default: a temporary directory)")
    demo.add_argument(
        "--memory-size",
        metavar="MIB",
        type=_parse_mib_or_zero,
        default=1024,
        help="the workload whose dump's peak memory is measured, in MiB or with a suffix; 0 skips it (default: 1024)",
    )
    demo.add_argument(
        "--memory-out",
        metavar="DIR",
        type=Path,
        help="where that dump's image goes, removed after; it needs twice --memory-size (default: a temporary directory)",
    )
    demo.set_defaults(run=cmd_demo)

    backends = commands.add_parser(
        "backends",
        help="say which backends work for a process",
        description=_fill(
            "List the backends and whether each works for PID here, or why not; also which one "
            "--backend auto would pick.  Without PID, for the pysweep process itself.  "
            "Exit status 1 if none works."
        )
        + "\n\n"
        + _backend_help(),
        formatter_class=_Formatter,
    )
    backends.add_argument("pid", metavar="PID", type=_parse_pid, nargs="?", help="the process to check")
    backends.add_argument("--json", action="store_true", help="print the answer as JSON")
    backends.set_defaults(run=cmd_backends)
    return parser


def round_line(r: RoundStats) -> str:
    """One dump round, as `pysweep dump` and `pysweep demo` print it."""
    return f"round {r.round}: {r.pages} pages ({r.bytes} bytes), sweep {r.sweep_s * 1e3:.1f} ms, copy {r.copy_s * 1e3:.1f} ms" + (
        ", frozen" if r.frozen else ""
    )


def cmd_dump(args: argparse.Namespace) -> int:
    from pysweep.dump import Dumper

    pid: int = args.pid
    _require_process(pid)

    def progress(r: RoundStats) -> None:
        _write(sys.stdout, round_line(r))

    dumper = Dumper(
        pid,
        args.out,
        backend=args.backend,
        max_rounds=args.max_rounds,
        converge_bytes=args.converge_bytes,
        progress=None if args.json else progress,
    )
    rounds = dumper.run(resume=not args.leave_stopped)
    total = sum(r.bytes for r in rounds)
    if args.json:
        _write(
            sys.stdout,
            json.dumps(
                {
                    "pid": pid,
                    "backend": dumper.tracker.name,
                    "out": str(args.out),
                    "rounds": [
                        {
                            "round": r.round,
                            "pages": r.pages,
                            "bytes": r.bytes,
                            "sweep_s": r.sweep_s,
                            "copy_s": r.copy_s,
                            "frozen": r.frozen,
                        }
                        for r in rounds
                    ],
                    "bytes": total,
                    "freeze_s": dumper.freeze_s,
                    "sweep_stops_s": dumper.sweep_stops_s,
                    "peak_rss_bytes": _peak_rss(),
                }
            ),
        )
        return 0
    _write(
        sys.stdout,
        f"dump of pid {pid} with {dumper.tracker.name}: {len(rounds)} rounds, {total} bytes, "
        f"frozen {dumper.freeze_s * 1e3:.1f} ms copying {rounds[-1].bytes} bytes; image in {args.out}",
    )
    if dumper.sweep_stops_s:
        _write(
            sys.stdout,
            f"{dumper.tracker.name} sweeps are not atomic: the process was also stopped "
            f"{dumper.sweep_stops_s * 1e3:.1f} ms in all for the earlier rounds' sweeps",
        )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from pysweep.dump import verify

    pid: int = args.pid
    _require_process(pid)
    bad = verify(args.dir, pid)
    if args.json:
        _write(
            sys.stdout,
            json.dumps({"pid": pid, "image": str(args.dir), "matches": not bad, "mismatched_pages": [f"{a:#x}" for a in bad]}),
        )
        return 1 if bad else 0
    if not bad:
        _write(sys.stdout, f"pid {pid} matches {args.dir} byte for byte")
        return 0
    shown = ", ".join(f"{a:#x}" for a in bad[:8])
    _write(sys.stdout, f"pid {pid} differs from {args.dir} in {len(bad)} pages: {shown}" + (", ..." if len(bad) > 8 else ""))
    return 1


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from pysweep import workload
    from pysweep.dump import Dumper, full_stop_dump, verify

    def progress(r: RoundStats) -> None:
        _write(sys.stdout, "  " + round_line(r))

    with tempfile.TemporaryDirectory(prefix="pysweep-demo-") as tmp:
        out = args.out or Path(tmp)
        _write(sys.stdout, f"workload: {args.size} MiB, {args.rate} pages written a second, a mapping coming and going")
        proc = workload.start(args.size, args.rate)
        try:
            # A backend that cannot watch the workload fails here, before any dump.
            dumper = Dumper(
                proc.pid,
                out / "pre-copy",
                backend=args.backend,
                max_rounds=args.max_rounds,
                converge_bytes=args.converge_bytes,
                progress=progress,
            )
            time.sleep(1)
            _write(sys.stdout, f"full-stop dump of pid {proc.pid}:")
            full_s, full_bytes = full_stop_dump(proc.pid, out / "full-stop")
            _write(sys.stdout, f"  frozen {full_s * 1e3:.1f} ms, copying {full_bytes} bytes")
            _write(sys.stdout, f"pre-copy dump of pid {proc.pid}, with {dumper.tracker.name}:")
            rounds = dumper.run(resume=False)
            bad = verify(out / "pre-copy", proc.pid)
            proc.send_signal(signal.SIGCONT)
        finally:
            proc.kill()
            proc.wait()
        frozen_bytes = rounds[-1].bytes
        _write(
            sys.stdout,
            f"  {len(rounds)} rounds with {dumper.tracker.name}, "
            f"{sum(r.bytes for r in rounds)} bytes in all; image " + ("exact" if not bad else f"WRONG in {len(bad)} pages"),
        )
        _write(sys.stdout, "")
        _write(sys.stdout, f"{'':12}{'frozen':>12}{'copied while frozen':>22}")
        _write(sys.stdout, f"{'full stop':12}{full_s * 1e3:>9.1f} ms{full_bytes:>16} bytes")
        _write(sys.stdout, f"{'pre-copy':12}{dumper.freeze_s * 1e3:>9.1f} ms{frozen_bytes:>16} bytes")
        if dumper.sweep_stops_s:
            _write(
                sys.stdout,
                f"{'':12}plus {dumper.sweep_stops_s * 1e3:.1f} ms stopped for the earlier rounds' "
                f"sweeps ({dumper.tracker.name} sweeps are not atomic)",
            )
        if dumper.freeze_s >= full_s:
            _write(sys.stdout, f"the pre-copy freeze is {dumper.freeze_s / full_s:.1f}x longer")
        else:
            _write(sys.stdout, f"the pre-copy freeze is {full_s / dumper.freeze_s:.1f}x shorter")
        if args.out:
            _write(sys.stdout, f"images in {args.out}")
    if args.memory_size:
        _write(sys.stdout, "")
        with tempfile.TemporaryDirectory(prefix="pysweep-demo-", dir=args.memory_out) as tmp:
            peak = _dump_peak_rss(args.memory_size, args.rate, args.backend, Path(tmp))
        _write(sys.stdout, f"`pysweep dump` of a {args.memory_size} MiB workload: peak resident memory {peak / (1 << 20):.1f} MiB")
    return 1 if bad else 0


def _peak_rss() -> int:
    """This process's peak resident memory, in bytes (VmHWM: of its own
    address space, not of the one it was forked from)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _dump_peak_rss(size_mib: int, rate: int, backend: str, out: Path) -> int:
    """Dump a ``size_mib`` workload with ``pysweep dump`` into ``out`` in a
    child; its peak resident memory in bytes."""
    from pysweep import workload

    proc = workload.start(size_mib, rate)
    try:
        time.sleep(1)
        child = subprocess.run(
            [sys.executable, "-m", "pysweep", "dump", str(proc.pid), "--out", str(out), "--backend", backend, "--json"],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        proc.kill()
        proc.wait()
    if child.returncode:
        raise CliError(f"pysweep dump of the {size_mib} MiB workload exited with status {child.returncode}")
    peak: int = json.loads(child.stdout)["peak_rss_bytes"]
    return peak


# Errors and the entry point.


def error_message(exc: BaseException) -> str:
    """What ``pysweep: ...`` prints for an expected failure: a line, and lines on what to do."""
    if isinstance(exc, CliError | SweepError):
        message = str(exc)
    elif isinstance(exc, OSError):
        message = exc.strerror or str(exc)
        if exc.filename is not None:
            message = f"{exc.filename}: {message}"
    else:
        message = str(exc)
    if isinstance(exc, BackendUnavailableError):
        pid = "PID" if exc.pid is None else str(exc.pid)
        if exc.backend == "auto":
            message += (
                "\nThe touched_sweep backend needs the patched kernel, soft_dirty a kernel with\n"
                "CONFIG_MEM_SOFT_DIRTY; pagemap_scan watches only the process that uses it\n"
                "(pysweep.Tracker() in the program itself)."
            )
        else:
            message += f"\n`pysweep backends {pid}` lists the backends that work for it here."
    elif isinstance(exc, PermissionError):
        message += " (pysweep needs ptrace access to the target: the same user, or root, as Yama allows)"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pysweep`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except BrokenPipeError:
        # The reader went away (`pysweep sweep PID | head`): say nothing more.
        _silence_stdout()
        return 1
    except (CliError, OSError) as exc:
        _write(sys.stderr, f"pysweep: {error_message(exc)}")
        return 1
    except KeyboardInterrupt:
        _write(sys.stderr, "pysweep: interrupted")
        return 130


def _silence_stdout() -> None:
    # Python flushes stdout again at exit, which would fail once more.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
