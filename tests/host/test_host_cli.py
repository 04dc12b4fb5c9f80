"""The ``pysweep`` command on the host, against a scripted backend.

The host has no touched_sweep, so the formatting, the JSON, the watch loop
and the error paths run against a fake backend registered under the name
``fake``; the real backends are only asked to fail the way they do here.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

import pysweep
from pysweep import PAGE_SIZE, Range, RangeFlag, SweepResult, cli, maps, tracker
from pysweep.tracker import Backend, Guarantees

ROOT = Path(__file__).resolve().parents[2]
P = PAGE_SIZE
BASE = 0x7F00_0000_0000
TOUCHED, GONE, OVER = RangeFlag.TOUCHED, RangeFlag.GONE, RangeFlag.OVERREPORTED


class FakeBackend(Backend):
    """Answers sweeps from :attr:`script`, one entry per sweep: a list of
    ranges, or an exception to raise.  Records every call."""

    name = "fake"
    guarantees = Guarantees(
        remote=True,
        atomic=True,
        range_clear=True,
        reports_gone=True,
        reports_zaps=True,
        follows_mremap=True,
        reports_new_mappings=False,
        cost="none",
    )
    script: ClassVar[list[list[Range] | BaseException]] = []
    calls: ClassVar[list[tuple[object, ...]]] = []
    instances: ClassVar[list[FakeBackend]] = []

    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        self.closed = False
        FakeBackend.instances.append(self)

    def track(self, start: int, end: int) -> None:
        self.calls.append(("track", start, end))

    def untrack(self, start: int, end: int) -> None:
        self.calls.append(("untrack", start, end))

    def sweep(self, start: int, end: int, *, clear: bool = True, max_ranges: int | None = None) -> SweepResult:
        self.calls.append(("sweep", start, end, clear))
        step = self.script.pop(0) if self.script else []
        if isinstance(step, BaseException):
            raise step
        return SweepResult(step, end)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake() -> Iterator[type[FakeBackend]]:
    tracker.register_backend("fake", FakeBackend)
    FakeBackend.script, FakeBackend.calls, FakeBackend.instances = [], [], []
    try:
        yield FakeBackend
    finally:
        tracker.unregister_backend("fake")
    assert all(instance.closed for instance in FakeBackend.instances), "the CLI left a backend open"


@pytest.fixture
def target() -> Iterator[int]:
    """A process to point the CLI at."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True
    )
    try:
        # Its mappings stay put once it has started.
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        yield child.pid
    finally:
        child.kill()
        child.wait()


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    status = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def window(start_page: int, end_page: int) -> str:
    return f"{BASE + start_page * P:#x}-{BASE + end_page * P:#x}"


def r(start_page: int, end_page: int, flags: RangeFlag = TOUCHED) -> Range:
    return Range(BASE + start_page * P, BASE + end_page * P, flags)


def missing_pid() -> int:
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1


# --help


def test_top_level_help_explains_the_tool(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--help")
    assert status == 0
    assert out.startswith("usage: pysweep")
    for text in (
        "wrote",
        "must be tracked",
        "track",
        "sweep",
        "watch",
        "untrack",
        "backends",
        "touched_sweep",
        "pagemap_scan",
        "soft_dirty",
        "auto",
        "examples:",
        "pysweep watch 1234",
        "exit status",
    ):
        assert text in out, text


@pytest.mark.parametrize(
    ("command", "texts"),
    [
        ("track", ["--range", "[stack]", "skipped", "kernel", "--read-only"]),
        ("untrack", ["--range", "Holes"]),
        ("sweep", ["--no-clear", "--json", "--backend", "--track", "TOUCHED|OVERREPORTED", "GONE", "hex strings", "walk_end"]),
        ("watch", ["--interval", "--rounds", "Ctrl-C", "exits", "--json", "GONE"]),
        ("backends", ["auto", "soft_dirty"]),
    ],
)
def test_each_command_has_help(capsys: pytest.CaptureFixture[str], command: str, texts: list[str]) -> None:
    status, out, _ = run(capsys, command, "--help")
    assert status == 0
    assert out.startswith(f"usage: pysweep {command}")
    for text in texts:
        assert text in out, text


def test_help_through_the_module_entry_point() -> None:
    done = subprocess.run([sys.executable, "-m", "pysweep", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: pysweep") and "examples:" in done.stdout
    assert done.stderr == ""


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys)
    assert status == 2
    assert "usage: pysweep" in err


# --range and other arguments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0x7f0000000000-0x7f0000100000", (0x7F00_0000_0000, 0x7F00_0010_0000)),
        ("0X1000-0X3000", (0x1000, 0x3000)),
        (f"{P}-{4 * P}", (P, 4 * P)),
        (f"0x{P:x}-{2 * P}", (P, 2 * P)),
    ],
)
def test_parse_range_accepts_hex_and_decimal(text: str, expected: tuple[int, int]) -> None:
    assert cli.parse_range(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0x1001-0x3000", "0x1001 is not page aligned"),
        ("0x1000-0x3001", "0x3001 is not page aligned"),
        ("1000-8192", "1000 is not page aligned"),
        ("0x3000-0x1000", "END must be above START"),
        ("0x1000-0x1000", "END must be above START"),
        ("0x1000", "write START-END"),
        ("0x1000-", "write START-END"),
        ("-0x1000", "write START-END"),
        ("7f00-8000", "write hex addresses with 0x"),
        ("0xzz-0x1000", "is not an address"),
        ("one-two", "is not an address"),
        (f"0x0-{1 << 64:#x}", "does not fit in 64 bits"),
    ],
)
def test_bad_range_is_a_clear_usage_error(capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        cli.parse_range(text)
    status, out, err = run(capsys, "sweep", "1", f"--range={text}")
    assert status == 2 and out == ""
    assert "argument --range: " in err and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["sweep", "abc"],
        ["sweep", "0"],
        ["sweep", "-5"],
        ["sweep", "1", "--backend", "nonesuch"],
        ["watch", "1", "--interval", "0"],
        ["watch", "1", "--interval", "soon"],
        ["watch", "1", "--rounds", "0"],
        ["track", "1", "--no-clear"],
    ],
)
def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert "error:" in err and "Traceback" not in err


# sweep: output


SAMPLE = [r(1, 3), r(4, 5, TOUCHED | OVER), r(8, 12, GONE)]


def test_sweep_table(capsys: pytest.CaptureFixture[str], fake: type[FakeBackend], target: int) -> None:
    fake.script = [SAMPLE]
    status, out, err = run(capsys, "sweep", target, "--backend", "fake", "--range", window(0, 16))
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == f"pid {target}: tracked {window(0, 16)} (64 KiB)"
    assert lines[1].startswith(f"pid {target}, backend fake, window {window(0, 16)}, cleared, ")
    assert lines[2].split() == ["start", "end", "size", "pages", "flags"]
    rows = [line.split() for line in lines[3:6]]
    assert rows == [
        [f"{BASE + P:#x}", f"{BASE + 3 * P:#x}", "8", "KiB", "2", "TOUCHED"],
        [f"{BASE + 4 * P:#x}", f"{BASE + 5 * P:#x}", "4", "KiB", "1", "TOUCHED|OVERREPORTED"],
        [f"{BASE + 8 * P:#x}", f"{BASE + 12 * P:#x}", "16", "KiB", "4", "GONE"],
    ]
    assert lines[6] == ("total: 2 touched ranges, 3 pages (12 KiB), 1 of them overreported; 1 gone range, 4 pages (16 KiB)")
    assert len(lines) == 7
    # An in-process backend tracks the window first, and says what that means.
    assert fake.calls == [("track", BASE, BASE + 16 * P), ("sweep", BASE, BASE + 16 * P, True)]
    assert "keeps its tracking inside this pysweep process" in err


def test_sweep_table_columns_line_up(capsys: pytest.CaptureFixture[str], fake: type[FakeBackend], target: int) -> None:
    fake.script = [[r(0, 1), r(2, 0x402)]]
    status, out, _ = run(capsys, "sweep", target, "--backend", "fake", "--range", window(0, 0x500))
    assert status == 0
    table = out.splitlines()[2:5]
    flags_column = {line.index(word) for line, word in zip(table, ["flags", "TOUCHED", "TOUCHED"], strict=True)}
    assert len(flags_column) == 1
    assert "4 MiB" in table[2]


def test_sweep_empty(capsys: pytest.CaptureFixture[str], fake: type[FakeBackend], target: int) -> None:
    status, out, _ = run(capsys, "sweep", target, "--backend", "fake", "--range", window(0, 1))
    assert status == 0
    assert out.splitlines()[-1] == "total: 0 touched ranges, 0 pages (0 B); 0 gone ranges"


def test_sweep_json(capsys: pytest.CaptureFixture[str], fake: type[FakeBackend], target: int) -> None:
    fake.script = [SAMPLE]
    status, out, err = run(capsys, "sweep", target, "--backend", "fake", "--range", window(0, 16), "--json")
    assert status == 0, err
    assert err == ""
    document = json.loads(out)
    assert document["pid"] == target
    assert document["backend"] == "fake"
    assert document["page_size"] == P
    assert document["window"] == {"start": f"{BASE:#x}", "end": f"{BASE + 16 * P:#x}"}
    assert document["clear"] is True
    assert document["walk_end"] == f"{BASE + 16 * P:#x}"
    assert isinstance(document["sweep_ms"], float)
    assert document["tracked"]["tracked"] == [{"start": f"{BASE:#x}", "end": f"{BASE + 16 * P:#x}", "name": ""}]
    assert document["ranges"] == [
        {"start": f"{BASE + P:#x}", "end": f"{BASE + 3 * P:#x}", "flags": ["TOUCHED"], "pages": 2, "bytes": 2 * P},
        {"start": f"{BASE + 4 * P:#x}", "end": f"{BASE + 5 * P:#x}", "flags": ["TOUCHED", "OVERREPORTED"], "pages": 1, "bytes": P},
        {"start": f"{BASE + 8 * P:#x}", "end": f"{BASE + 12 * P:#x}", "flags": ["GONE"], "pages": 4, "bytes": 4 * P},
    ]
    assert document["totals"] == {
        "ranges": 3,
        "touched_ranges": 2,
        "touched_pages": 3,
        "touched_bytes": 3 * P,
        "gone_ranges": 1,
        "gone_pages": 4,
        "gone_bytes": 4 * P,
        "overreported_pages": 1,
    }


def test_sweep_no_clear(capsys: pytest.CaptureFixture[str], fake: type[FakeBackend], target: int) -> None:
    status, out, _ = run(capsys, "sweep", target, "--backend", "fake", "--range", window(0, 4), "--no-clear", "--json")
    assert status == 0
    assert json.loads(out)["clear"] is False
    assert fake.calls[-1] == ("sweep", BASE, BASE + 4 * P, False)
    status, out, _ = run(capsys, "sweep", target, "--backend", "fake", "--range", window(0, 4), "--no-clear")
    assert ", not cleared, " in out.splitlines()[1]


# sweep: the default window and tracking every mapping


def test_default_window_is_the_mapped_memory(capsys: pytest.CaptureFixture[str], fake: type[FakeBackend], target: int) -> None:
    mappings = [m for m in maps.read_maps(target) if m.path != "[vsyscall]"]
    low, high = min(m.start for m in mappings), max(m.end for m in mappings)
    status, out, err = run(capsys, "sweep", target, "--backend", "fake", "--json")
    assert status == 0, err
    document = json.loads(out)
    assert document["window"] == {"start": f"{low:#x}", "end": f"{high:#x}"}
    assert fake.calls[-1] == ("sweep", low, high, True)

    # Every writable mapping was tracked on its own; the stack and the
    # kernel's mappings were skipped, with a reason.
    tracked = [(start, end) for op, start, end, *_ in fake.calls if op == "track"]
    writable = [
        (m.start, m.end)
        for m in maps.read_maps(target, with_flags=True)
        if m.writable and m.path not in ("[stack]", "[vvar]", "[vdso]", "[vsyscall]", "[vvar_vclock]")
    ]
    assert tracked == writable
    skipped = {entry["name"]: entry["reason"] for entry in document["tracked"]["skipped"]}
    assert "grows on faults" in skipped["[stack]"]
    assert "kernel-provided" in skipped["[vdso]"]
    assert any(reason.startswith("not writable") for reason in skipped.values())


def test_read_only_tracks_more(capsys: pytest.CaptureFixture[str], fake: type[FakeBackend], target: int) -> None:
    status, _, _ = run(capsys, "sweep", target, "--backend", "fake", "--json", "--read-only")
    assert status == 0
    tracked = {(start, end) for op, start, end, *_ in fake.calls if op == "track"}
    readonly = {(m.start, m.end) for m in maps.read_maps(target) if not m.writable and not m.path.startswith("[")}
    assert readonly and readonly <= tracked


def test_skip_reasons() -> None:
    def mapping(name: str = "", perms: str = "rw-p", flags: str = "rd wr mr mw me ac") -> maps.Mapping:
        return maps.Mapping(BASE, BASE + P, perms, name, vmflags=frozenset(flags.split()))

    assert maps.untrackable_reason(mapping()) is None
    assert maps.untrackable_reason(mapping("[heap]")) is None
    assert maps.untrackable_reason(mapping("/dev/shm/x", "rw-s")) is None
    assert "stack" in str(maps.untrackable_reason(mapping("[stack]")))
    assert "stack" in str(maps.untrackable_reason(mapping("", flags="rd wr gd")))
    assert "hugetlb" in str(maps.untrackable_reason(mapping("/anon_hugepage (deleted)", flags="rd wr ht")))
    assert "VM_PFNMAP" in str(maps.untrackable_reason(mapping("/dev/mem", "rw-s", "rd wr sh pf io")))
    assert "kernel-provided" in str(maps.untrackable_reason(mapping("[vvar]", "r--p")))
    assert maps.untrackable_reason(mapping("/usr/lib/libc.so.6", "r-xp")) == maps.READ_ONLY_REASON
    assert maps.untrackable_reason(mapping("/usr/lib/libc.so.6", "r-xp"), read_only=True) is None


def test_track_report_lines_up_what_it_skipped() -> None:
    stack = maps.Mapping(0x7FFC_D2E3_2000, 0x7FFC_D2E5_3000, "rw-p", "[stack]")
    vdso = maps.Mapping(0x7F95_0D43_5000, 0x7F95_0D43_7000, "r-xp", "[vdso]")
    heap = maps.Mapping(0x5611_8847_1000, 0x5611_8849_2000, "rw-p", "[heap]")
    libc = [
        maps.Mapping(0x7F95_0D00_0000 + i * 0x10_0000, 0x7F95_0D00_0000 + i * 0x10_0000 + 0x8_0000, "r-xp", "/libc.so")
        for i in range(3)
    ]
    report = cli.TrackReport(
        tracked=[heap],
        already=1,
        skipped=[
            (vdso, str(maps.untrackable_reason(vdso))),
            (stack, str(maps.untrackable_reason(stack))),
            *((m, maps.READ_ONLY_REASON) for m in libc),
        ],
    )
    assert report.summary() == "tracked 1 mapping (132 KiB), 1 of them tracked already; skipped 5"
    assert report.details() == [
        "  skipped 0x7f950d435000-0x7f950d437000  r-xp    8 KiB  [vdso]   kernel-provided mapping, cannot be tracked",
        "  skipped 0x7ffcd2e32000-0x7ffcd2e53000  rw-p  132 KiB  [stack]  the main thread's stack grows on faults and cannot be"
        " tracked",
        "  skipped 3 read-only mappings (1.5 MiB): not writable now; --read-only tracks them too",
    ]


def test_read_maps_reads_vmflags() -> None:
    plain = maps.read_maps(os.getpid())
    flagged = maps.read_maps(os.getpid(), with_flags=True)
    assert plain and all(m.vmflags is None for m in plain)
    assert all((m.vmflags is not None and "rd" in m.vmflags) or "r" not in m.perms for m in flagged)
    assert [(m.start, m.end, m.path) for m in flagged][:5] == [(m.start, m.end, m.path) for m in plain][:5]
    assert not any(m.tracked for m in flagged)


def test_track_failures_on_single_mappings_are_skipped(
    capsys: pytest.CaptureFixture[str], fake: type[FakeBackend], target: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused: list[int] = []

    def track(self: FakeBackend, start: int, end: int) -> None:
        if not refused:
            refused.append(start)
            raise pysweep.InvalidArgumentError(errno.EINVAL, op="TRACK", start=start, end=end, target="pid 1")
        self.calls.append(("track", start, end))

    monkeypatch.setattr(FakeBackend, "track", track)
    status, out, _ = run(capsys, "sweep", target, "--backend", "fake", "--json")
    assert status == 0
    skipped = json.loads(out)["tracked"]["skipped"]
    assert [entry["reason"] for entry in skipped if entry["start"] == f"{refused[0]:#x}"] == [
        "the kernel refused it (EINVAL): not eligible for tracking"
    ]


# watch


def test_watch_rounds(capsys: pytest.CaptureFixture[str], fake: type[FakeBackend], target: int) -> None:
    fake.script = [[r(0, 2)], [], [r(3, 4), r(6, 8, GONE)]]
    status, out, err = run(capsys, "watch", target, "--backend", "fake", "--range", window(0, 8), "--rounds", 3, "--interval", 0.01)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == f"pid {target}: tracked {window(0, 8)} (32 KiB)"
    assert lines[1] == f"watching pid {target} with fake, window {window(0, 8)}, every 0.01 s, until 3 rounds"
    assert lines[2].split() == ["round", "ranges", "pages", "bytes", "gone", "sweep", "ms"]
    rounds = [line.split() for line in lines[3:6]]
    assert [row[:6] for row in rounds] == [
        ["1", "1", "2", "8", "KiB", "0"],
        ["2", "0", "0", "0", "B", "0"],
        ["3", "1", "1", "4", "KiB", "1"],
    ]
    assert all(float(row[6]) >= 0 for row in rounds)
    assert lines[6].startswith("done after 3 rounds: 3 pages (12 KiB) touched, 1 range gone, sweeps took ")
    assert len(lines) == 7
    assert fake.calls[0] == ("track", BASE, BASE + 8 * P)
    assert fake.calls[1:] == [("sweep", BASE, BASE + 8 * P, True)] * 3


def test_watch_json(capsys: pytest.CaptureFixture[str], fake: type[FakeBackend], target: int) -> None:
    fake.script = [[r(0, 2)], [r(2, 3, GONE)]]
    status, out, _ = run(
        capsys,
        "watch",
        target,
        "--backend",
        "fake",
        "--range",
        window(0, 8),
        "--rounds",
        2,
        "--interval",
        0.01,
        "--json",
        "--no-clear",
    )
    assert status == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["round"] for line in lines[:2]] == [1, 2]
    assert lines[0]["ranges"] == [
        {"start": f"{BASE:#x}", "end": f"{BASE + 2 * P:#x}", "flags": ["TOUCHED"], "pages": 2, "bytes": 2 * P}
    ]
    assert lines[1]["totals"]["gone_ranges"] == 1
    assert lines[2]["end"] == "rounds" and lines[2]["rounds"] == 2 and lines[2]["touched_pages"] == 2
    assert len(lines) == 3
    assert fake.calls[-1] == ("sweep", BASE, BASE + 8 * P, False)


def test_watch_ends_when_the_sweep_says_the_target_is_gone(
    capsys: pytest.CaptureFixture[str], fake: type[FakeBackend], target: int
) -> None:
    fake.script = [[r(0, 1)], pysweep.ProcessGoneError(errno.ESRCH, op="SWEEP", target=f"pid {target}")]
    status, out, err = run(capsys, "watch", target, "--backend", "fake", "--range", window(0, 8), "--interval", 0.01)
    assert status == 0, err
    assert out.splitlines()[-1].startswith(f"pid {target} exited after 1 round: 1 page (4 KiB) touched")
    assert err == ""


def test_watch_ends_when_the_target_exits(capsys: pytest.CaptureFixture[str], fake: type[FakeBackend]) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    try:
        status, out, err = run(capsys, "watch", child.pid, "--backend", "fake", "--range", window(0, 8), "--interval", 0.05)
    finally:
        child.wait()
    assert status == 0, err
    assert out.splitlines()[-1].startswith(f"pid {child.pid} exited after ")


def test_watch_ctrl_c_prints_a_summary(capsys: pytest.CaptureFixture[str], fake: type[FakeBackend], target: int) -> None:
    fake.script = [[r(0, 3)], KeyboardInterrupt()]
    status, out, err = run(capsys, "watch", target, "--backend", "fake", "--range", window(0, 8), "--interval", 0.01)
    assert status == 0, err
    assert out.splitlines()[-1].startswith("stopped after 1 round: 3 pages (12 KiB) touched, 0 ranges gone")


def test_watch_other_errors_fail(capsys: pytest.CaptureFixture[str], fake: type[FakeBackend], target: int) -> None:
    fake.script = [pysweep.NotPermittedError(errno.EPERM, op="SWEEP", start=BASE, end=BASE + P, target=f"pid {target}")]
    status, _, err = run(capsys, "watch", target, "--backend", "fake", "--range", window(0, 1), "--interval", 0.01)
    assert status == 1
    assert err.startswith(f"pysweep: touched_sweep(SWEEP, {BASE:#x}-{BASE + P:#x}) on pid {target}: Operation not permitted")
    assert "ptrace" in err and "Traceback" not in err


# Errors


def test_forcing_touched_sweep_on_the_host(capsys: pytest.CaptureFixture[str], target: int) -> None:
    if pysweep.probe().available:
        pytest.skip("this kernel has touched_sweep")
    for argv in (
        ["sweep", target, "--backend", "touched_sweep"],
        ["track", target],
        ["untrack", target],
        ["watch", target, "--backend", "touched_sweep", "--rounds", 1, "--interval", 0.01],
    ):
        status, out, err = run(capsys, *argv)
        assert status == 1, argv
        assert out == ""
        assert err.startswith("pysweep: touched_sweep backend: ") and err.count("\n") == 2
        assert err.endswith(f"`pysweep backends {target}` lists the backends that work for it here.\n")
        assert pysweep.probe().reason in err
        assert "Traceback" not in err


def test_nonexistent_pid(capsys: pytest.CaptureFixture[str], fake: type[FakeBackend]) -> None:
    pid = missing_pid()
    for argv in (
        ["sweep", pid],
        ["sweep", pid, "--backend", "fake"],
        ["track", pid],
        ["untrack", pid],
        ["watch", pid, "--rounds", 1],
        ["backends", pid],
    ):
        status, out, err = run(capsys, *argv)
        assert (status, out, err) == (1, "", f"pysweep: no process with pid {pid}\n"), argv


def test_backend_errors_are_one_line(capsys: pytest.CaptureFixture[str], fake: type[FakeBackend], target: int) -> None:
    fake.script = [OSError(errno.EIO, "Input/output error", f"/proc/{target}/pagemap")]
    status, out, err = run(capsys, "sweep", target, "--backend", "fake", "--range", window(0, 1))
    assert (status, out) == (1, "")
    assert err == f"pysweep: /proc/{target}/pagemap: Input/output error\n"


def test_unexpected_errors_are_not_hidden(fake: type[FakeBackend], target: int) -> None:
    fake.script = [RuntimeError("a bug")]
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["sweep", str(target), "--backend", "fake", "--range", window(0, 1)])


def test_auto_lists_every_reason(capsys: pytest.CaptureFixture[str], target: int) -> None:
    if any(why is None for why in pysweep.available_backends(target).values()):
        pytest.skip("a backend works here")
    status, _, err = run(capsys, "sweep", target)
    assert status == 1
    lines = err.splitlines()
    assert lines[0] == f"pysweep: auto backend: no backend works for pid {target}:"
    assert lines[1].startswith("  touched_sweep: ")
    assert "patched kernel" in err and "CONFIG_MEM_SOFT_DIRTY" in err
    assert max(map(len, lines[4:])) <= 80


def test_a_forced_backend_names_the_pid_to_ask_about(capsys: pytest.CaptureFixture[str], target: int) -> None:
    if pysweep.probe().implemented:
        pytest.skip("touched_sweep works here")
    status, _, err = run(capsys, "track", target)
    assert status == 1
    assert err.splitlines()[-1] == f"`pysweep backends {target}` lists the backends that work for it here."


# backends


def test_backends(capsys: pytest.CaptureFixture[str], fake: type[FakeBackend], target: int) -> None:
    status, out, _ = run(capsys, "backends", target)
    lines = out.splitlines()
    assert lines[0] == f"backends for pid {target}:"
    assert any(line.split()[:2] == ["fake", "works"] for line in lines)
    assert lines[-1].startswith("auto picks: ")
    assert status == 0
    status, out, _ = run(capsys, "backends", target, "--json")
    document = json.loads(out)
    assert document["backends"]["fake"] is None
    assert set(document["backends"]) == set(pysweep.backend_names())
    if not pysweep.probe().available:
        assert "touched_sweep backend:" in document["backends"]["touched_sweep"]


def test_backends_json_exits_as_the_text_form_does(capsys: pytest.CaptureFixture[str], target: int) -> None:
    """Status 1 when no backend works for the process, with --json too."""
    text_status, _, _ = run(capsys, "backends", target)
    json_status, out, _ = run(capsys, "backends", target, "--json")
    assert json_status == text_status == (0 if json.loads(out)["auto"] else 1)


def test_backends_of_the_calling_process(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "backends")
    assert out.startswith(f"backends for this process (pid {os.getpid()}")
    assert status in (0, 1)


# Helpers


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (4096, "4 KiB"),
        (6144, "6 KiB"),
        (1536 * 1024, "1.5 MiB"),
        (1 << 30, "1 GiB"),
        (3 << 40, "3 TiB"),
        (1 << 50, "1024 TiB"),
    ],
)
def test_human_size(size: int, text: str) -> None:
    assert cli.human_size(size) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1048576", 1 << 20),
        ("1M", 1 << 20),
        ("1MiB", 1 << 20),
        ("512k", 512 << 10),
        ("512KB", 512 << 10),
        ("2G", 2 << 30),
        (" 4 MiB", 4 << 20),
        ("512B", 512),
        ("512b", 512),
    ],
)
def test_sizes_take_binary_suffixes(text: str, expected: int) -> None:
    assert cli._parse_bytes(text) == expected
    if expected % (1 << 20) == 0:
        assert cli._parse_mib(text if not text.strip().isdigit() else str(expected >> 20)) == expected >> 20


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--size", "1.5G"], "argument --size: '1.5G' is not a positive size in MiB"),
        (["demo", "--size", "1K"], "argument --size: '1K' is not a positive size in MiB"),
        (["demo", "--rate", "0"], "argument --rate: '0' is not a positive number of pages a second"),
        (["demo", "--converge-bytes", "-1"], "argument --converge-bytes: '-1' is not a positive size in bytes"),
        (["demo", "--memory-size", "-5"], "argument --memory-size: '-5' is not a positive size in MiB"),
        (["demo", "--size", "512B"], "argument --size: '512B' is not a positive size in MiB"),
        (["demo", "--size", "1ib"], "argument --size: '1ib' is not a positive size in MiB"),
        (["dump", "1", "--out", "x", "--max-rounds", "0"], "argument --max-rounds: '0' is not a positive number of rounds"),
    ],
)
def test_numbers_are_refused_in_their_own_words(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    """Each option says what it wanted: sizes are not "rounds"."""
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert message in err


@pytest.mark.parametrize("zero", ["0", "00", "0M"])
def test_demo_memory_size_zero_skips_the_memory_dump(zero: str) -> None:
    args = cli.build_parser().parse_args(["demo", "--memory-size", zero, "--size", "1G"])
    assert args.memory_size == 0 and args.size == 1024


def test_demo_checks_the_backend_before_any_dump(capsys: pytest.CaptureFixture[str], target: int) -> None:
    if any(why is None for why in pysweep.available_backends(target).values()):
        pytest.skip("a backend can watch another process here")
    status, out, err = run(capsys, "demo", "--size", "8", "--memory-size", "0")
    assert status == 1
    assert "full-stop dump" not in out
    assert err.startswith("pysweep: auto backend: no backend works for pid ")


@pytest.mark.parametrize("bad", [[], [0x7F0000001000, 0x7F0000005000]])
def test_verify_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, target: int, tmp_path: Path, bad: list[int]
) -> None:
    from pysweep import dump

    monkeypatch.setattr(dump, "verify", lambda image, pid: bad if (image, pid) == (tmp_path, target) else None)
    status, out, _ = run(capsys, "verify", tmp_path, target, "--json")
    assert status == (1 if bad else 0)
    assert json.loads(out) == {
        "pid": target,
        "image": str(tmp_path),
        "matches": not bad,
        "mismatched_pages": [f"{a:#x}" for a in bad],
    }
