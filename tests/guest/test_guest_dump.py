"""The pre-copy dumper against a target that keeps writing.

The target writes unique values into random pages of a shared and a private
anonymous mapping, zaps a page of the private one with MADV_DONTNEED now
and then (reading some back), and maps and unmaps a small mapping now and
then, all through the dump.  The dump must converge to an image equal to the memory
of the stopped target, byte for byte, on every backend that can dump
another process.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from pysweep import PAGE_SIZE
from pysweep.dump import Dumper, RoundStats, _running_threads, load_image, read_memory, verify
from pysweep.maps import read_maps
from pysweep.soft_dirty import SoftDirtyBackend
from pysweep.tracker import register_backend, unregister_backend

REGION = 4 << 20
FILE_PAGES = 64

TARGET = """
import mmap, random, sys
size = int(sys.argv[1])
private = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
shared = mmap.mmap(-1, size)
own = mmap.mmap(-1, size, flags=private)
for off in range(0, size, mmap.PAGESIZE):
    shared[off] = own[off] = 1
# A private mapping of a file, as a program's .data is: written pages
# become the process's own, the others stay the file's.
with open(sys.argv[2], "r+b") as f:
    from_file = mmap.mmap(f.fileno(), FILE_PAGES * mmap.PAGESIZE, flags=mmap.MAP_PRIVATE)
from_file[0:8] = (1).to_bytes(8, "little")
print(hex(id(shared)), flush=True)
rng = random.Random(7)
churn = None
n = 0
while True:
    off = rng.randrange(size // 8) * 8
    (shared if n & 1 else own)[off:off + 8] = n.to_bytes(8, "little")
    n += 1
    if n % 50 == 25:
        at = rng.randrange(FILE_PAGES // 2 * mmap.PAGESIZE // 8) * 8  # the first half only
        from_file[at:at + 8] = n.to_bytes(8, "little")
    if n % 500 == 250:
        # A zap, as allocators do: the page reads as zeros, with no write.
        page = rng.randrange(size // mmap.PAGESIZE) * mmap.PAGESIZE
        own.madvise(mmap.MADV_DONTNEED, page, mmap.PAGESIZE)
        if n % 1000 == 250:
            own[page]  # and maps the zero page
    if n % 2000 == 0:
        if churn is None:
            churn = mmap.mmap(-1, 16 * mmap.PAGESIZE, flags=private)
            churn[0:8] = n.to_bytes(8, "little")
        else:
            churn.close()
            churn = None
""".replace("FILE_PAGES", str(FILE_PAGES))


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    data = tmp_path / "data"
    data.write_bytes(bytes(range(256)) * (FILE_PAGES * PAGE_SIZE // 256))
    proc = subprocess.Popen([sys.executable, "-c", TARGET, str(REGION), str(data)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline()  # the mappings are populated
    yield proc
    proc.send_signal(signal.SIGCONT)
    proc.kill()
    proc.wait()


def explain(image_dir: Path, pid: int, bad: list[int]) -> str:
    """Where each mismatching page lies, and which rounds copied it."""
    merged = load_image(image_dir / "merged")
    rounds = sorted(image_dir.glob("round-*"))
    copied = {r.name: load_image(r) for r in rounds}
    maps = read_maps(pid)
    lines = []
    for addr in bad[:16]:
        m = next((m for m in maps if m.start <= addr < m.end), None)
        where = f"{m.start:#x}-{m.end:#x} {m.perms} {m.path or '(anonymous)'}" if m else "not mapped"
        try:
            now: bytes | None = read_memory(pid, addr, PAGE_SIZE)
        except OSError:
            now = None
        img = merged.get(addr)
        diff = (
            "image lacks it"
            if img is None
            else "unreadable now"
            if now is None
            else f"{sum(a != b for a, b in zip(img, now, strict=True))} bytes differ"
        )
        by = [name for name, pages in copied.items() if addr in pages]
        lines.append(f"{addr:#x} in {where}: {diff}; copied by {', '.join(by) or 'no round'}")
    return "\n".join(lines)


@pytest.mark.parametrize("backend", ["touched_sweep", "soft_dirty"])
def test_dump_of_a_writing_process_is_exact(writer: subprocess.Popen[str], tmp_path: Path, backend: str) -> None:
    seen: list[RoundStats] = []
    dumper = Dumper(writer.pid, tmp_path, backend=backend, max_rounds=4, converge_bytes=64 * PAGE_SIZE, progress=seen.append)
    rounds = dumper.run(resume=False)

    assert rounds == seen
    assert rounds[0].bytes >= 2 * REGION and not rounds[0].frozen
    assert rounds[-1].frozen and not any(r.frozen for r in rounds[:-1])
    assert 2 <= len(rounds) <= 5
    # soft_dirty reads and clears in two steps: the target was stopped
    # across each earlier sweep.  touched_sweep's sweeps need no stop.
    assert (dumper.sweep_stops_s > 0) == (backend == "soft_dirty")
    # The target kept writing between rounds: later rounds copied something.
    assert sum(r.pages for r in rounds[1:]) > 0

    bad = verify(tmp_path, writer.pid)
    assert bad == [], explain(tmp_path, writer.pid, bad)
    # verify() leaves a stopped process stopped: still exact.
    assert verify(tmp_path, writer.pid) == []

    manifest = json.loads((tmp_path / "round-000" / "manifest.json").read_text())
    assert manifest["backend"] == backend
    reasons = {s["path"]: s["reason"] for s in manifest["skipped"]}
    assert "grows on faults" in reasons["[stack]"]
    final = json.loads((tmp_path / f"round-{len(rounds) - 1:03d}" / "manifest.json").read_text())
    assert final["frozen"]
    merged = load_image(tmp_path / "merged")
    assert len(merged) * PAGE_SIZE >= 2 * REGION
    # Private file mappings are dumped, the target's own among them, with
    # only the pages the process has a copy of: it wrote page 0 and pages
    # of the first half, never the second half.
    files = {f["path"]: f for f in manifest["file_private"]}
    data = files[str(tmp_path / "data")]
    start = int(data["start"], 16)
    assert (int(data["end"], 16) - start, data["offset"]) == (FILE_PAGES * PAGE_SIZE, "0x0")
    assert start in merged
    assert not any(start + i * PAGE_SIZE in merged for i in range(FILE_PAGES // 2, FILE_PAGES))


POKED_TARGET = """
import mmap, sys
pages = int(sys.argv[1])
buf = mmap.mmap(-1, pages * mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for off in range(0, len(buf), mmap.PAGESIZE):
    buf[off] = 1
print("ready", flush=True)
# Each command writes the next page, once: a write the dump misses is
# never written again, so it stays missing.
for n in range(pages):
    sys.stdin.buffer.read(1)
    buf[n * mmap.PAGESIZE + 8:n * mmap.PAGESIZE + 16] = (n + 1).to_bytes(8, "little")
    print(n, flush=True)
"""


class _SoftDirtyWriteInTheWindow(SoftDirtyBackend):
    """soft_dirty, with the target made to write between reading the bits and clearing them."""

    name = "soft_dirty_write_in_the_window"
    target: subprocess.Popen[str]
    # For each write asked for: whether the target was running then.
    running: ClassVar[list[bool]] = []

    def _save_marks(self) -> None:
        super()._save_marks()
        assert self.target.stdin is not None and self.target.stdout is not None
        self.running.append(bool(_running_threads(self.target.pid)))
        self.target.stdin.write("w")
        self.target.stdin.flush()
        # A running target writes the page at once; a stopped one writes it
        # once resumed, after the clear.
        if self.running[-1]:
            assert select.select([self.target.stdout], [], [], 10)[0], "the target did not write"
            self.target.stdout.readline()


def test_a_write_between_reading_and_clearing_soft_dirty_bits_is_not_lost(tmp_path: Path) -> None:
    """soft_dirty reads the bits and clears them in two steps: the dumper
    stops the target across each sweep, so no write can land in between."""
    proc = subprocess.Popen([sys.executable, "-c", POKED_TARGET, "64"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    register_backend(_SoftDirtyWriteInTheWindow.name, _SoftDirtyWriteInTheWindow)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        _SoftDirtyWriteInTheWindow.target = proc
        _SoftDirtyWriteInTheWindow.running = []
        dumper = Dumper(proc.pid, tmp_path, backend=_SoftDirtyWriteInTheWindow.name, max_rounds=4, converge_bytes=0)
        rounds = dumper.run(resume=False)
        assert len(rounds) == 5
        assert verify(tmp_path, proc.pid) == []
        # Only the clears of track() ran with the target running (round 0
        # copies what they miss); the target was stopped for every sweep.
        assert _SoftDirtyWriteInTheWindow.running == [True] * len(dumper.tracked) + [False] * 4
        assert dumper.sweep_stops_s > 0
    finally:
        unregister_backend(_SoftDirtyWriteInTheWindow.name)
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait()


def test_verify_finds_a_change_after_the_dump(writer: subprocess.Popen[str], tmp_path: Path) -> None:
    Dumper(writer.pid, tmp_path, backend="touched_sweep", max_rounds=2).run(resume=True)
    # The target goes on writing once resumed.
    time.sleep(1)
    bad = verify(tmp_path, writer.pid)
    assert bad, "a dump of a running process went stale, and verify() must say so"


def test_command_line_dump_and_verify(writer: subprocess.Popen[str], tmp_path: Path) -> None:
    pysweep = [sys.executable, "-m", "pysweep"]
    out = subprocess.run(
        [*pysweep, "dump", str(writer.pid), "--out", str(tmp_path / "img"), "--max-rounds", "3", "--leave-stopped"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = out.splitlines()
    assert lines[0].startswith("round 0: ") and lines[-2].endswith(", frozen")
    assert lines[-1].startswith(f"dump of pid {writer.pid} with touched_sweep: ") and " frozen " in lines[-1]
    ok = subprocess.run([*pysweep, "verify", str(tmp_path / "img"), str(writer.pid)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "matches" in ok.stdout
    writer.send_signal(signal.SIGCONT)
    time.sleep(1)
    stale = subprocess.run([*pysweep, "verify", str(tmp_path / "img"), str(writer.pid)], capture_output=True, text=True)
    assert stale.returncode == 1 and "differs" in stale.stdout
    # --json: one object at the end; the image is written all the same.
    report = json.loads(
        subprocess.run(
            [*pysweep, "dump", str(writer.pid), "--out", str(tmp_path / "img2"), "--max-rounds", "2", "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert report["pid"] == writer.pid and report["backend"] == "touched_sweep"
    assert report["rounds"][-1]["frozen"] and report["bytes"] == sum(r["bytes"] for r in report["rounds"])
    assert report["peak_rss_bytes"] > 0 and (tmp_path / "img2" / "merged" / "manifest.json").exists()


@pytest.mark.parametrize("backend", ["touched_sweep", "soft_dirty"])
def test_demo_compares_the_two_dumps(backend: str) -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "pysweep", "demo", "--size", "8", "--rate", "500", "--backend", backend, "--memory-size", "16"],
        capture_output=True,
        text=True,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout
    assert f"with {backend}" in out and "image exact" in out
    table = [line for line in out.splitlines() if line.endswith(" bytes") and " ms " in line]
    full = next(line for line in table if line.startswith("full stop"))
    pre = next(line for line in table if line.startswith("pre-copy"))
    # The full stop copies everything while frozen; pre-copy only the rest.
    assert int(full.split()[-2]) >= 8 << 20
    assert int(pre.split()[-2]) < int(full.split()[-2])
    # The memory part: `pysweep dump --json` of a 16 MiB workload, in a
    # process of its own, holds less than the workload.
    peak = next(line for line in out.splitlines() if "peak resident memory" in line)
    assert 0 < float(peak.split()[-2]) < 16 + 40
