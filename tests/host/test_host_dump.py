"""The dumper's parts that need no kernel tracking: image format, maps, memory reads, stops."""

from __future__ import annotations

import ctypes
import itertools
import json
import mmap
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import attrs
import pytest

from pysweep import PAGE_SIZE, SweepResult, dump
from pysweep._spans import Spans
from pysweep.dump import Dumper, load_image, read_memory
from pysweep.maps import Mapping, parse_maps, read_maps, undumpable_reason
from pysweep.tracker import Backend, Guarantees, register_backend, unregister_backend


def test_image_round_trip(tmp_path: Path) -> None:
    pages = {0x10000: b"a" * PAGE_SIZE, 0x11000: b"b" * PAGE_SIZE, 0x20000: b"c" * PAGE_SIZE}
    dump._write_round(tmp_path / "r", {"round": 0}, dump._runs(pages))
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    # Adjacent pages make one range; addresses are hex strings.
    assert [(r["start"], r["end"]) for r in manifest["ranges"]] == [("0x10000", "0x12000"), ("0x20000", "0x21000")]
    assert load_image(tmp_path / "r") == pages


def test_page_index_matches_a_dict_of_pages(tmp_path: Path) -> None:
    """Copies over, next to and across earlier ones, in several rounds'
    files, and drops of parts of them, leave the merged image what a dict of
    pages would hold."""
    import random

    rng = random.Random(20261207)
    index = dump._PageIndex()
    model: dict[int, bytes] = {}
    writers: list[dump._ImageWriter] = []
    for step in range(600):
        if step % 100 == 0:
            writers.append(dump._ImageWriter(tmp_path / f"round-{len(writers):03d}"))
        first = rng.randrange(64)
        count = rng.randrange(1, 9)
        if rng.random() < 0.75:
            data = b"".join(bytes([step % 256, n]) * (PAGE_SIZE // 2) for n in range(count))
            start = 0x400000 + first * PAGE_SIZE
            index.add(start, start + len(data), len(writers) - 1, writers[-1].add(start, data))
            for n in range(count):
                model[start + n * PAGE_SIZE] = data[n * PAGE_SIZE : (n + 1) * PAGE_SIZE]
        else:
            lo = 0x400000 + first * PAGE_SIZE
            index.drop(Spans.of(lo, lo + count * PAGE_SIZE))
            for n in range(count):
                model.pop(lo + n * PAGE_SIZE, None)
    for writer in writers:
        writer.close({})
    index.write_merged(tmp_path / "merged", [w.path / "pages.bin" for w in writers], {"pid": 1})
    assert load_image(tmp_path / "merged") == model
    ranges = json.loads((tmp_path / "merged" / "manifest.json").read_text())["ranges"]
    starts = [int(r["start"], 16) for r in ranges]
    assert starts == sorted(starts)


def test_page_index_keeps_one_run_for_pages_copied_in_order(tmp_path: Path) -> None:
    """A first round copies in address order: one run, however many
    copies, and the merged image is one range."""
    index = dump._PageIndex()
    writer = dump._ImageWriter(tmp_path / "round-000")
    for n in range(100):
        start = 0x10000 + n * PAGE_SIZE
        index.add(start, start + PAGE_SIZE, 0, writer.add(start, bytes([n]) * PAGE_SIZE))
    assert len(list(index.runs())) == 1
    writer.close({})
    index.write_merged(tmp_path / "merged", [writer.path / "pages.bin"], {})
    ranges = json.loads((tmp_path / "merged" / "manifest.json").read_text())["ranges"]
    assert ranges == [{"start": "0x10000", "end": hex(0x10000 + 100 * PAGE_SIZE), "offset": 0}]
    assert load_image(tmp_path / "merged")[0x10000 + 5 * PAGE_SIZE] == bytes([5]) * PAGE_SIZE


def test_image_of_another_format_is_refused(tmp_path: Path) -> None:
    dump._write_round(tmp_path / "r", {}, iter([]))
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    manifest["format"] = dump.FORMAT + 1
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="format"):
        load_image(tmp_path / "r")


@pytest.mark.parametrize(
    ("perms", "path", "reason"),
    [
        ("rw-p", "", None),
        ("rw-s", "/dev/zero (deleted)", None),
        ("rw-p", "[heap]", None),
        ("r--p", "", "not writable"),
        ("rw-p", "[stack]", "the main thread's stack grows on faults and cannot be tracked"),
        ("rw-p", "[vvar]", "kernel-provided mapping, cannot be tracked"),
        ("rw-p", "[anon:cache]", None),
        ("rw-p", "[some_future_name]", "kernel-provided mapping, cannot be tracked"),
        ("rw-p", "/usr/lib/libc.so.6", None),
        ("rw-s", "/memfd:x (deleted)", "shared file mapping: its content is the file's"),
        ("-w-p", "", "not readable: process_vm_readv() cannot copy it"),
    ],
)
def test_what_is_dumped(perms: str, path: str, reason: str | None) -> None:
    assert undumpable_reason(Mapping(0x1000, 0x2000, perms, path)) == reason


def test_own_maps_and_memory() -> None:
    buf = mmap.mmap(-1, 2 * PAGE_SIZE)
    buf[:5] = b"hello"
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    maps = read_maps(os.getpid())
    assert any(m.start <= addr < m.end and "w" in m.perms for m in maps)
    assert read_memory(os.getpid(), addr, 5) == b"hello"
    with pytest.raises(OSError, match="process_vm_readv"):
        read_memory(os.getpid(), 0, PAGE_SIZE)


THREADED_TARGET = """
import ctypes, mmap, sys, threading
buf = mmap.mmap(-1, 4 * mmap.PAGESIZE)  # MAP_SHARED
def spin():
    while True:
        buf[0] = (buf[0] + 1) & 0xff
for _ in range(3):
    threading.Thread(target=spin, daemon=True).start()
print(hex(ctypes.addressof(ctypes.c_char.from_buffer(buf))), flush=True)
spin()
"""


class _StateRecordingBackend(Backend):
    """Records, at each clearing sweep, which threads of the target still run."""

    name = "state-recording"
    guarantees = Guarantees(
        remote=True,
        atomic=False,
        range_clear=True,
        reports_gone=False,
        reports_zaps=False,
        follows_mremap=False,
        reports_new_mappings=False,
        cost="nothing",
    )
    running_at_sweep: ClassVar[list[list[tuple[str, str]]]] = []

    def track(self, start: int, end: int) -> None:
        pass

    def untrack(self, start: int, end: int) -> None:
        pass

    def sweep(self, start: int, end: int, *, clear: bool = True, max_ranges: int | None = None) -> SweepResult:
        self.running_at_sweep.append(dump._running_threads(self.pid))
        return SweepResult((), end)


class _AtomicStateRecordingBackend(_StateRecordingBackend):
    name = "atomic-state-recording"
    guarantees = attrs.evolve(_StateRecordingBackend.guarantees, atomic=True, reports_zaps=True)


@pytest.fixture
def threaded_target() -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen([sys.executable, "-c", THREADED_TARGET], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    yield proc, int(proc.stdout.readline(), 16)
    proc.kill()
    proc.wait()


def test_stops_and_resumes_through_the_pidfd(
    threaded_target: tuple[subprocess.Popen[str], int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every stop and resume goes through the dumper's pidfd, never to the bare pid, which can be reused."""
    proc, _ = threaded_target
    sent: list[tuple[int, int]] = []
    send = signal.pidfd_send_signal

    def recording_send(fd: int, sig: int, *args: object) -> None:
        sent.append((fd, sig))
        send(fd, sig, *args)

    def kill(pid: int, sig: int) -> None:
        pytest.fail(f"signal {sig} sent to pid {pid}, not through a pidfd")

    monkeypatch.setattr(signal, "pidfd_send_signal", recording_send)
    monkeypatch.setattr(os, "kill", kill)
    register_backend(_StateRecordingBackend.name, _StateRecordingBackend)
    try:
        dumper = Dumper(proc.pid, tmp_path, backend=_StateRecordingBackend.name, max_rounds=3, converge_bytes=0)
        pidfd = dumper._pidfd
        dumper.run()
    finally:
        unregister_backend(_StateRecordingBackend.name)
    # Two non-atomic earlier sweeps and the frozen round, each stopped and
    # resumed, all through the one pidfd the dumper opened, and closed.
    assert sent == [(pidfd, signal.SIGSTOP), (pidfd, signal.SIGCONT)] * 3
    assert dumper._pidfd == -1


def test_stopping_a_process_that_exited_fails_at_once() -> None:
    """A zombie takes SIGSTOP and never stops: say it exited, do not wait for it."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while dump._state(f"/proc/{proc.pid}/stat") != "Z":  # exited, not reaped
            assert time.monotonic() < deadline
            time.sleep(0.01)
        start = time.monotonic()
        with pytest.raises(ProcessLookupError, match="exited"), dump._stopped(proc.pid):
            pass
        assert time.monotonic() - start < 5
    finally:
        proc.wait()


@pytest.mark.parametrize("backend", [_StateRecordingBackend, _AtomicStateRecordingBackend])
def test_non_atomic_sweeps_run_with_every_thread_stopped(
    backend: type[_StateRecordingBackend], threaded_target: tuple[subprocess.Popen[str], int], tmp_path: Path
) -> None:
    """A backend that reads and clears in two steps loses the writes in between unless the target is stopped."""
    proc, shared = threaded_target
    register_backend(backend.name, backend)
    backend.running_at_sweep = []
    try:
        rounds = Dumper(proc.pid, tmp_path, backend=backend.name, max_rounds=3, converge_bytes=0).run()
    finally:
        unregister_backend(backend.name)
    assert len(rounds) == 4 and len(backend.running_at_sweep) == 3
    *earlier, frozen = backend.running_at_sweep
    assert frozen == []
    if backend.guarantees.atomic:
        # An atomic backend's earlier sweeps leave the target running.
        assert all(len(running) == 4 for running in earlier)
    else:
        assert earlier == [[], []]
    # A backend whose marks die with dropped entries gets shared mappings
    # copied whole in the last round; one that reports zaps does not.
    last = load_image(tmp_path / "round-003")
    shared_pages = {shared + i * PAGE_SIZE for i in range(4)}
    assert (shared_pages <= set(last)) == (not backend.guarantees.reports_zaps)
    # Resumed after each stop: all four threads run again.
    deadline = time.monotonic() + 10
    while len(dump._running_threads(proc.pid)) < 4:
        assert time.monotonic() < deadline, "the target was left stopped"
        time.sleep(0.01)


LEADER_EXITS = """
import ctypes, threading, time
def worker():
    while True:
        time.sleep(0.01)
threading.Thread(target=worker, daemon=True).start()
print("ready", flush=True)
ctypes.CDLL(None).pthread_exit(None)
"""


def test_a_leader_that_called_pthread_exit_does_not_hold_up_the_stop() -> None:
    """The leader of a process whose other threads live on stays a zombie thread, which never stops."""
    proc = subprocess.Popen([sys.executable, "-c", LEADER_EXITS], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 10
        while dump._state(f"/proc/{proc.pid}/task/{proc.pid}/stat") != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        pidfd = os.pidfd_open(proc.pid)
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGSTOP)
            dump._wait_stopped(proc.pid, pidfd, timeout=5)
            states = sorted(state for _, state in dump._running_threads(proc.pid))
            assert states == []
        finally:
            os.close(pidfd)
    finally:
        proc.kill()
        proc.wait()


def test_reading_goes_on_past_unreadable_pages() -> None:
    """A page unmapped in the middle of a copy costs that page, not the rest of the chunk."""
    area = mmap.mmap(-1, 8 * PAGE_SIZE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(area))
    for i in range(8):
        area[i * PAGE_SIZE] = i + 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    for hole in (3, 6, 7):
        assert libc.munmap(base + hole * PAGE_SIZE, PAGE_SIZE) == 0
    pieces = list(dump.read_spans(os.getpid(), [(base, base + 8 * PAGE_SIZE)]))
    assert [(at - base) // PAGE_SIZE for at, _ in pieces] == [0, 4]
    assert [len(data) // PAGE_SIZE for _, data in pieces] == [3, 2]
    assert [data[off] for _, data in pieces for off in range(0, len(data), PAGE_SIZE)] == [1, 2, 3, 5, 6]


def test_reading_an_exited_process_says_so() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(ProcessLookupError):
        list(dump.read_spans(proc.pid, [(0x10000, 0x10000 + PAGE_SIZE)]))


def test_spans_overlapping_adjacent_mappings_find_each() -> None:
    maps = [Mapping(0x1000, 0x3000, "rw-p", ""), Mapping(0x3000, 0x5000, "rw-p", ""), Mapping(0x8000, 0x9000, "rw-p", "")]
    assert dump._overlapping(maps, Spans(((0x2000, 0x4000),))) == {0, 1}
    assert dump._overlapping(maps, Spans(((0x5000, 0x8000),))) == set()
    assert dump._overlapping(maps, Spans(((0x0, 0x1000), (0x8800, 0xA000)))) == {2}


def test_pagemap_shows_what_a_zap_changed_without_a_write() -> None:
    """Zapped pages, the zero page after a read and untouched pages; not a page written since."""
    area = mmap.mmap(-1, 4 * PAGE_SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    base = ctypes.addressof(ctypes.c_char.from_buffer(area))
    area[0] = area[PAGE_SIZE] = 1
    area.madvise(mmap.MADV_DONTNEED, PAGE_SIZE, PAGE_SIZE)
    assert area[2 * PAGE_SIZE] == 0  # a read maps the shared zero page
    found = dump._unbacked(os.getpid(), Spans.of(base, base + 4 * PAGE_SIZE))
    assert found == Spans.of(base + PAGE_SIZE, base + 4 * PAGE_SIZE)


def test_many_spans_are_read_in_batches_past_holes() -> None:
    """More spans than one process_vm_readv() takes, with unmapped pages among them."""
    pages = 3000
    area = mmap.mmap(-1, pages * PAGE_SIZE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(area))
    for i in range(pages):
        area[i * PAGE_SIZE : i * PAGE_SIZE + 4] = i.to_bytes(4, "little")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    holes = {10, 1100, 2998}
    for hole in holes:
        assert libc.munmap(base + hole * PAGE_SIZE, PAGE_SIZE) == 0
    # Every other page as a span of its own, then one span of 3 pages
    # over the last hole.
    spans = [(base + i * PAGE_SIZE, base + (i + 1) * PAGE_SIZE) for i in range(0, 2996, 2)]
    spans.append((base + 2997 * PAGE_SIZE, base + 3000 * PAGE_SIZE))
    got = {}
    for at, data in dump.read_spans(os.getpid(), spans):
        for off in range(0, len(data), PAGE_SIZE):
            got[(at + off - base) // PAGE_SIZE] = int.from_bytes(data[off : off + 4], "little")
    want = [i for i in range(0, 2996, 2) if i not in holes] + [2997, 2999]
    assert sorted(got) == want
    assert all(got[i] == i for i in got)


MAPS_TEXT = (
    b"55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]\n"
    b"7f1200000000-7f1200021000 rw-p 00000000 00:00 0 \n"
    b"7f1300000000-7f1300001000 r--p 00000000 08:01 1234                       /usr/lib/a b.so\n"
    b"7f1400000000-7f1400002000 rw-s 00000000 00:01 99                         /memfd:x (deleted)\n"
    b"7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n"
)


def test_maps_lines_are_split_as_the_kernel_writes_them() -> None:
    maps = parse_maps(MAPS_TEXT)
    assert [(m.start, m.end, m.perms, m.path) for m in maps] == [
        (0x55D0C0A00000, 0x55D0C0A21000, "rw-p", "[heap]"),
        (0x7F1200000000, 0x7F1200021000, "rw-p", ""),
        (0x7F1300000000, 0x7F1300001000, "r--p", "/usr/lib/a b.so"),
        (0x7F1400000000, 0x7F1400002000, "rw-s", "/memfd:x (deleted)"),
        (0x7FFD00000000, 0x7FFD00021000, "rw-p", "[stack]"),
    ]
    assert [m.perms for m in parse_maps(MAPS_TEXT, writable_only=True)] == ["rw-p", "rw-p", "rw-s", "rw-p"]


def test_own_pages_of_a_private_file_mapping(tmp_path: Path) -> None:
    """The pages a write copied from the file, and anonymous ones; not the file's own."""
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * (4 * PAGE_SIZE // 256))
    with open(path, "r+b") as f:
        area = mmap.mmap(f.fileno(), 4 * PAGE_SIZE, flags=mmap.MAP_PRIVATE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(area))
    assert area[0] == 0 and area[2 * PAGE_SIZE] == 0  # read: the file's pages, mapped
    area[PAGE_SIZE + 5] = 1  # written: a copy of its own
    assert dump.own_pages(os.getpid(), Spans.of(base, base + 4 * PAGE_SIZE)) == Spans.of(base + PAGE_SIZE, base + 2 * PAGE_SIZE)
    (m,) = [m for m in read_maps(os.getpid()) if m.start == base]
    assert m.file_private and m.path == str(path) and m.offset == 0 and undumpable_reason(m) is None


class _NoMarksBackend(Backend):
    """What soft_dirty sees of a process that changes its layout but writes
    nothing after round 0: no marks and no GONE ranges."""

    name = "test-no-marks"
    guarantees = Guarantees(
        remote=True,
        atomic=True,
        range_clear=True,
        reports_gone=False,
        reports_zaps=False,
        follows_mremap=False,
        reports_new_mappings=True,
        cost="none",
    )

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def track(self, start: int, end: int) -> None:
        pass

    def untrack(self, start: int, end: int) -> None:
        pass

    def sweep(self, start: int, end: int, *, clear: bool = True, max_ranges: int | None = None) -> SweepResult:
        return SweepResult([], end)


LAYOUT_TARGET = r"""
import ctypes, os, sys, mmap
P = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mremap.restype = ctypes.c_void_p
libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
fd = os.open(sys.argv[1], os.O_RDWR)
base = libc.mmap(None, 64 * P, 0, 0x22, -1, 0)
anon = libc.mmap(base, 4 * P, 3, 0x32, -1, 0)
data = libc.mmap(base + 4 * P, 4 * P, 3, 0x12, fd, 0)
libc.munmap(base + 8 * P, 56 * P)
if sys.argv[2] != "move":
    ctypes.memset(anon, 0x41, 4 * P)
ctypes.memset(data + 3 * P, 0x58, P)
print(hex(base), flush=True)
sys.stdin.readline()
if sys.argv[2] == "truncate":
    os.ftruncate(fd, 2 * P)
elif sys.argv[2] == "grow":
    libc.munmap(data, 4 * P)
    assert libc.mremap(anon, 4 * P, 8 * P, 0, None) == anon
elif sys.argv[2] == "move":
    other = libc.mmap(None, 4 * P, 3, 0x02, fd, 0)
    assert libc.mremap(other, 4 * P, 4 * P, 3, anon) == anon
print("ok", flush=True)
sys.stdin.readline()
"""


@pytest.mark.parametrize("change", ["truncate", "grow", "move"])
def test_layout_changes_no_mark_reports_leave_the_image_exact(tmp_path: Path, change: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """truncate: a page the process owned is gone with the file's end; grow: an anonymous mapping grows over
    a private file mapping's old range; move: a private file mapping is moved onto an anonymous one the image
    holds as zeros.  None of them marks a page; the frozen round must still get the layout right."""
    data = tmp_path / "data"
    data.write_bytes(b"F" * 4 * PAGE_SIZE)
    proc = subprocess.Popen(
        [sys.executable, "-c", LAYOUT_TARGET, str(data), change], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    register_backend(_NoMarksBackend.name, _NoMarksBackend)
    try:
        base = int(proc.stdout.readline(), 16)

        dumper = Dumper(proc.pid, tmp_path / "image", backend=_NoMarksBackend.name, max_rounds=1)
        first_round = dumper._round

        def change_layout_after_round_0(number: int, frozen: bool) -> dump.RoundStats:
            # Between round 0 and the frozen round.
            stats = first_round(number, frozen)
            if number == 0:
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
                assert proc.stdout.readline() == "ok\n"
            return stats

        monkeypatch.setattr(dumper, "_round", change_layout_after_round_0)
        dumper.run()
        bad = dump.verify(tmp_path / "image", proc.pid)
        # The rest of the process wrote on unmarked: only the test's pages count.
        assert [(a - base) // PAGE_SIZE for a in bad if base <= a < base + 8 * PAGE_SIZE] == []
    finally:
        unregister_backend(_NoMarksBackend.name)
        proc.kill()
        proc.wait()


def test_an_unmapped_gap_is_skipped_whole() -> None:
    """After a page outside every mapping, reading resumes at the next mapping, not a page further."""
    readable = [(0x10000, 0x20000), (0x80000, 0x90000)]
    assert dump._after_unreadable(readable, 0x11000) == 0x12000  # inside: the next page
    assert dump._after_unreadable(readable, 0x20000) == 0x80000  # a gap: the next mapping
    assert dump._after_unreadable(readable, 0x1000) == 0x10000
    assert dump._after_unreadable(readable, 0x90000) == 1 << 64


_BOUNDED_DUMPER = """
import sys
from pathlib import Path
from pysweep import SweepResult, dump, maps
from pysweep.tracker import Backend, Guarantees, register_backend

class Nothing(Backend):
    name = "reports-nothing"
    guarantees = Guarantees(remote=True, atomic=True, range_clear=True, reports_gone=False, reports_zaps=True,
                            follows_mremap=False, reports_new_mappings=False, cost="nothing")
    def track(self, start, end): pass
    def untrack(self, start, end): pass
    def sweep(self, start, end, *, clear=True, max_ranges=None): return SweepResult((), end)

register_backend(Nothing.name, Nothing)
dump.Dumper(int(sys.argv[1]), Path(sys.argv[2]), backend=Nothing.name, max_rounds=2, converge_bytes=0).run()
# VmHWM: this address space's peak, not that of the one it was forked from.
print(next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def test_dumper_memory_stays_bounded_as_the_image_streams_to_disk(tmp_path: Path) -> None:
    """A dump of 192 MiB keeps the dumper's peak resident memory under 96 MiB:
    pages go to disk a chunk at a time, none is kept in memory."""
    from pysweep import workload

    proc = workload.start(192, 1000)
    try:
        out = subprocess.run(
            [sys.executable, "-c", _BOUNDED_DUMPER, str(proc.pid), str(tmp_path)], capture_output=True, text=True, check=True
        )
    finally:
        proc.kill()
        proc.wait()
    peak = int(out.stdout)
    assert peak < 96 << 20, f"peak resident memory {peak >> 20} MiB"
    # All of it was dumped.
    merged = json.loads((tmp_path / "merged" / "manifest.json").read_text())
    assert sum(int(r["end"], 16) - int(r["start"], 16) for r in merged["ranges"]) >= 192 << 20


_SHARED_TARGET = """
import mmap, sys
m = mmap.mmap(-1, int(sys.argv[1]) << 20)  # shared anonymous memory
for i in range(0, len(m), mmap.PAGESIZE):
    m[i] = 1
print("ready", flush=True)
sys.stdin.readline()
"""


def test_frozen_round_of_shared_memory_stays_bounded(tmp_path: Path) -> None:
    """A backend that misses zaps gets shared mappings copied whole in the
    frozen round; past DEFER_MAX those copies go to disk during the freeze
    instead of waiting in memory (256 MiB of shared memory: 300+ MiB peak
    before)."""
    proc = subprocess.Popen([sys.executable, "-c", _SHARED_TARGET, "256"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    # Its sweeps report a page of the shared mapping, which the frozen
    # round then copies whole.
    dumper = _BOUNDED_DUMPER.replace("reports_zaps=True", "reports_zaps=False").replace(
        "return SweepResult((), end)",
        "m = next(m for m in maps.read_maps(self.pid) if m.shared); "
        "return SweepResult._from_spans(((m.start + 4096, m.start + 8192),), end)",
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", dumper, str(proc.pid), str(tmp_path)], capture_output=True, text=True, check=True
        )
    finally:
        proc.kill()
        proc.wait()
    peak = int(out.stdout)
    assert peak < (96 + 64) << 20, f"peak resident memory {peak >> 20} MiB"
    # The frozen round wrote each page once, though it copied the shared
    # mapping whole after the pages its sweep reported.
    frozen = json.loads((tmp_path / "round-002" / "manifest.json").read_text())
    spans = sorted((int(r["start"], 16), int(r["end"], 16)) for r in frozen["ranges"])
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))
    assert (tmp_path / "round-002" / "pages.bin").stat().st_size == sum(end - start for start, end in spans)
