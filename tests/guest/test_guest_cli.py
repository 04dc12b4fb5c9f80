"""The ``pysweep`` command against a live process, with touched_sweep.

The target is a child Python process that maps an anonymous area and
writes to its pages, or unmaps it, when told to on its stdin.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import mmap
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from pysweep import PAGE_SIZE, available_backends, cli, maps

ROOT = Path(__file__).resolve().parents[2]
P = PAGE_SIZE
PAGES = 16
TIMEOUT = 300


def _serve(pages: int, commands: IO[str], replies: IO[str]) -> None:
    # The child's loop: one reply line per command.
    area = mmap.mmap(-1, pages * mmap.PAGESIZE)
    anchor = ctypes.c_char.from_buffer(area)
    print(hex(ctypes.addressof(anchor)), file=replies, flush=True)
    del anchor
    for line in commands:
        command, *numbers = line.split()
        if command == "write":
            for page in numbers:
                area[int(page) * mmap.PAGESIZE] = 1
        elif command == "unmap":
            area.close()
        elif command == "quit":
            break
        print("ok", file=replies, flush=True)


class _Process:
    """Just enough of ``subprocess.Popen`` for a forked child."""

    def __init__(self, pid: int, stdin: IO[str], stdout: IO[str]) -> None:
        self.pid, self.stdin, self.stdout = pid, stdin, stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


class Child:
    """The target, forked from this process (a fresh interpreter would take
    seconds to start under emulation): ``base`` is the start of its
    ``PAGES``-page area."""

    def __init__(self) -> None:
        to_child, from_parent = os.pipe()
        to_parent, from_child = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            status = 0
            try:
                os.close(from_parent)
                os.close(to_parent)
                _serve(PAGES, open(to_child), open(from_child, "w"))  # noqa: SIM115
            except BaseException:  # noqa: BLE001 - the child must reach _exit
                status = 1
            finally:
                os._exit(status)
        os.close(to_child)
        os.close(from_child)
        self.process = _Process(pid, open(from_parent, "w"), open(to_parent))  # noqa: SIM115
        self.pid = pid
        self.base = int(self._line(), 16)
        self.area = f"{self.base:#x}-{self.base + PAGES * P:#x}"

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the target died"
        return line.strip()

    def tell(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        if command != "quit":
            assert self._line() == "ok"

    def write(self, *pages: int) -> None:
        self.tell("write " + " ".join(map(str, pages)))

    def pages(self, first: int, end: int) -> tuple[str, str]:
        return f"{self.base + first * P:#x}", f"{self.base + end * P:#x}"

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()


@pytest.fixture
def child() -> Iterator[Child]:
    target = Child()
    try:
        yield target
    finally:
        target.close()


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    status = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def sweep_json(capsys: pytest.CaptureFixture[str], child: Child, *options: str) -> list[tuple[str, str, list[str]]]:
    status, out, err = run(capsys, "sweep", child.pid, "--range", child.area, "--json", *options)
    assert status == 0, err
    document = json.loads(out)
    assert document["backend"] == "touched_sweep" and document["walk_end"] == child.pages(PAGES, PAGES)[0]
    return [(r["start"], r["end"], r["flags"]) for r in document["ranges"]]


def test_sweep_reports_exactly_the_written_pages(capsys: pytest.CaptureFixture[str], child: Child) -> None:
    status, out, err = run(capsys, "track", child.pid, "--range", child.area)
    assert status == 0, err
    assert out == f"pid {child.pid}: tracked {child.area} (64 KiB)\n"
    assert sweep_json(capsys, child) == []
    child.write(1, 2, 5)
    assert sweep_json(capsys, child) == [(*child.pages(1, 3), ["TOUCHED"]), (*child.pages(5, 6), ["TOUCHED"])]
    assert sweep_json(capsys, child) == []


def test_no_clear_leaves_the_marks(capsys: pytest.CaptureFixture[str], child: Child) -> None:
    assert run(capsys, "track", child.pid, "--range", child.area)[0] == 0
    child.write(0, 3)
    written = [(*child.pages(0, 1), ["TOUCHED"]), (*child.pages(3, 4), ["TOUCHED"])]
    assert sweep_json(capsys, child, "--no-clear") == written
    assert sweep_json(capsys, child, "--no-clear") == written
    assert sweep_json(capsys, child) == written
    assert sweep_json(capsys, child) == []


def test_table_shows_gone(capsys: pytest.CaptureFixture[str], child: Child) -> None:
    assert run(capsys, "track", child.pid, "--range", child.area)[0] == 0
    child.write(2)
    child.tell("unmap")
    status, out, err = run(capsys, "sweep", child.pid, "--range", child.area)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"pid {child.pid}, backend touched_sweep, window {child.area}, cleared, ")
    assert lines[2].split() == [*child.pages(0, PAGES), "64", "KiB", str(PAGES), "GONE"]
    assert lines[3] == f"total: 0 touched ranges, 0 pages (0 B); 1 gone range, {PAGES} pages (64 KiB)"
    # Reported once: the clearing sweep forgot it.
    assert sweep_json(capsys, child) == []


def test_watch_prints_one_line_per_round(capsys: pytest.CaptureFixture[str], child: Child) -> None:
    assert run(capsys, "track", child.pid, "--range", child.area)[0] == 0
    child.write(4, 5, 6)
    status, out, err = run(capsys, "watch", child.pid, "--range", child.area, "--rounds", 3, "--interval", 0.1)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"watching pid {child.pid} with touched_sweep, window {child.area}")
    assert lines[2].split()[:3] == ["round", "ranges", "pages"]
    rounds = [line.split() for line in lines[3:-1]]
    assert [row[:6] for row in rounds] == [
        ["1", "1", "3", "12", "KiB", "0"],
        ["2", "0", "0", "0", "B", "0"],
        ["3", "0", "0", "0", "B", "0"],
    ]
    assert lines[-1].startswith("done after 3 rounds: 3 pages (12 KiB) touched, 0 ranges gone")


def test_track_every_mapping_then_untrack(capsys: pytest.CaptureFixture[str], child: Child) -> None:
    status, out, err = run(capsys, "track", child.pid)
    assert status == 0, err
    assert out.startswith(f"pid {child.pid}: tracked ")
    assert any(line.startswith("  skipped 0x") and "[stack]" in line and "grows on faults" in line for line in out.splitlines())
    tracked = [m for m in maps.read_maps(child.pid, with_flags=True) if m.tracked]
    assert any(m.start <= child.base and child.base + PAGES * P <= m.end for m in tracked)

    child.write(7)
    status, out, err = run(capsys, "sweep", child.pid, "--json")
    assert status == 0, err
    ranges = [(int(r["start"], 16), int(r["end"], 16)) for r in json.loads(out)["ranges"] if r["flags"] == ["TOUCHED"]]
    page = child.base + 7 * P
    assert any(start <= page < end for start, end in ranges)
    assert not any(start <= child.base + 6 * P < end for start, end in ranges)

    status, out, err = run(capsys, "untrack", child.pid)
    assert status == 0, err
    assert not any(m.tracked for m in maps.read_maps(child.pid, with_flags=True))
    child.write(8)
    status, out, err = run(capsys, "sweep", child.pid)
    assert status == 0
    assert out.splitlines()[-1] == "total: 0 touched ranges, 0 pages (0 B); 0 gone ranges"
    assert f"`pysweep track {child.pid}`" in err


def test_sweep_track_tracks_new_mappings(capsys: pytest.CaptureFixture[str], child: Child) -> None:
    status, out, err = run(capsys, "sweep", child.pid, "--track", "--range", child.area, "--json")
    assert status == 0, err
    assert json.loads(out)["ranges"] == []
    child.write(9)
    assert sweep_json(capsys, child, "--track") == [(*child.pages(9, 10), ["TOUCHED"])]


def test_track_errors(capsys: pytest.CaptureFixture[str], child: Child) -> None:
    stack = next(m for m in maps.read_maps(child.pid) if m.path == "[stack]")
    status, out, err = run(capsys, "track", child.pid, "--range", f"{stack.start:#x}-{stack.end:#x}")
    assert (status, out) == (1, "")
    assert err == f"pysweep: touched_sweep(TRACK, {stack.start:#x}-{stack.end:#x}) on pid {child.pid}: Invalid argument\n"
    child.tell("unmap")
    status, out, err = run(capsys, "track", child.pid, "--range", child.area)
    assert (status, out) == (1, "")
    assert err == f"pysweep: touched_sweep(TRACK, {child.area}) on pid {child.pid}: Cannot allocate memory\n"


def test_backends_auto_picks_touched_sweep(capsys: pytest.CaptureFixture[str], child: Child) -> None:
    status, out, _ = run(capsys, "backends", child.pid)
    assert status == 0
    assert out.splitlines()[-1] == "auto picks: touched_sweep"


def test_entry_point_sweep_and_watch_until_the_target_exits(child: Child) -> None:
    def pysweep(*argv: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pysweep", *map(str, argv)], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT
        )

    done = pysweep("track", child.pid, "--range", child.area)
    assert done.returncode == 0, done.stderr
    child.write(3)
    done = pysweep("sweep", child.pid, "--range", child.area, "--json")
    assert done.returncode == 0, done.stderr
    assert [(r["start"], r["end"], r["flags"]) for r in json.loads(done.stdout)["ranges"]] == [(*child.pages(3, 4), ["TOUCHED"])]

    watch = subprocess.Popen(
        [sys.executable, "-m", "pysweep", "watch", str(child.pid), "--range", child.area, "--interval", "0.2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        lines = [watch.stdout.readline() for _ in range(4)]  # two header lines, the column names, round 1
        assert lines[3].split()[0] == "1", lines
        child.tell("quit")
        out, err = watch.communicate(timeout=TIMEOUT)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert watch.returncode == 0, err
    assert err == ""
    assert out.splitlines()[-1].startswith(f"pid {child.pid} exited after ")


def test_track_json(capsys: pytest.CaptureFixture[str], child: Child) -> None:
    status, out, err = run(capsys, "track", child.pid, "--range", child.area, "--json")
    assert status == 0, err
    document = json.loads(out)
    start, end = child.pages(0, PAGES)
    assert document["tracked"] == [{"start": start, "end": end, "name": ""}]
    assert document["tracked_bytes"] == PAGES * P and document["skipped"] == []


def test_watch_with_an_in_process_backend_tracks_first(capsys: pytest.CaptureFixture[str], child: Child) -> None:
    why = available_backends(child.pid).get("soft_dirty", "no soft_dirty backend")
    if why is not None:
        pytest.skip(str(why))
    status, out, err = run(
        capsys, "watch", child.pid, "--backend", "soft_dirty", "--range", child.area, "--rounds", 2, "--interval", 0.1
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == f"pid {child.pid}: tracked {child.area} (64 KiB)"
    assert lines[1].startswith(f"watching pid {child.pid} with soft_dirty, window {child.area}")
    assert [line.split()[0] for line in lines[3:-1]] == ["1", "2"]
    assert lines[-1].startswith("done after 2 rounds: ")
