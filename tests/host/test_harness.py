"""The test driver's own logic: splat detection and result counting."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "testing" / "harness"))

import kbuild
import mmselftests
import soak
import suite
import vm

CLEAN_BOOT = """\
[    0.000000] Linux version 6.12.117 (harness@harness) #1 SMP PREEMPT_DYNAMIC
[    0.512345] clocksource: Switched to clocksource tsc-early
[    1.201000] Run /work/main/tools/testing/harness/guest-init as init process
harness-init: clocksource tsc
harness-init: running command
harness-init: command exited with status 0
[   20.000000] reboot: Restarting system
"""

SPLATS = {
    "warn": "[   5.1] WARNING: CPU: 1 PID: 77 at mm/touched_sweep.c:140 __do_sys_touched_sweep+0x10/0x20",
    "bug": "[   5.1] BUG: kernel NULL pointer dereference, address: 0008",
    "kasan": "[   5.1] BUG: KASAN: slab-use-after-free in foo+0x1/0x2",
    "lockdep": "[   5.1] WARNING: possible circular locking dependency detected",
    "atomic_sleep": "[   5.1] BUG: sleeping function called from invalid context at mm/gup.c:1",
    "oops": "[   5.1] Oops: general protection fault, probably for non-canonical address",
    "rcu": "[  30.1] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
    "hung": "[ 130.1] INFO: task python3:88 blocked for more than 120 seconds.",
    "panic": "[   5.1] Kernel panic - not syncing: Fatal exception",
}


def test_clean_console_has_no_splats() -> None:
    assert vm.find_splats(CLEAN_BOOT) == []


@pytest.mark.parametrize("kind", sorted(SPLATS))
def test_each_kind_of_splat_is_found(kind: str) -> None:
    console = CLEAN_BOOT + SPLATS[kind] + "\n[   5.2] Call Trace:\n"
    excerpts = vm.find_splats(console)
    assert len(excerpts) == 1
    assert SPLATS[kind] in excerpts[0]
    assert "Call Trace:" in excerpts[0]


def test_one_report_gives_one_excerpt() -> None:
    report = "\n".join([SPLATS["lockdep"], "[   5.2] 6.12.117 #1 Not tainted", "[   5.3] WARNING: held lock freed!"])
    assert len(vm.find_splats(CLEAN_BOOT + report)) == 1


def test_tap_totals(tmp_path: Path) -> None:
    tap = tmp_path / "k.tap"
    tap.write_text("TAP version 13\n1..3\nok 1 a\nnot ok 2 b\nok 3 c\n# Totals: pass:2 fail:1 xfail:0 xpass:0 skip:0 error:0\n")
    c = suite.tap_counts("k", tap)
    assert (c.passed, c.failed, c.skipped, c.ok) == (2, 1, 0, False)
    assert c.failures == ["b"]


def test_tap_skip_in_guest_is_not_ok(tmp_path: Path) -> None:
    tap = tmp_path / "k.tap"
    tap.write_text("# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:5 error:0\n")
    assert not suite.tap_counts("k", tap).ok


def test_tap_without_totals_is_not_ok(tmp_path: Path) -> None:
    tap = tmp_path / "k.tap"
    tap.write_text("TAP version 13\n1..3\nok 1 a\n")
    assert not suite.tap_counts("k", tap).ok


def test_tap_figures_of_the_reliability_tests(tmp_path: Path) -> None:
    tap = tmp_path / "k.tap"
    tap.write_text(
        "# 2469004 writes, 65 sweeps (2378 calls), ranges 1/2/3, 0.0 s, "
        "0 mismatches\n"
        "# 286107 writes, 17 sweeps (252 calls), ENOMEM target 17, 4.0 s, "
        "2 mismatches\n"
    )
    assert suite.tap_figures(tap) == "2,755,111 writes checked, 2 mismatches"
    tap.write_text("# t.c:1:fuzz:100000 calls: 17970 succeeded, 6 distinct errnos, 0 undocumented\n")
    assert suite.tap_figures(tap) == "100,000 fuzz calls, 6 distinct errnos"
    tap.write_text(
        "# t.c:9:every_fault_point:30 injected failures in all\n# t.c:9:every_fault_point:129 injected failures in all\n"
    )
    assert suite.tap_figures(tap) == "159 injected failures"
    tap.write_text("ok 1 a\n")
    assert suite.tap_figures(tap) == ""


def test_soak_keeps_the_figures(tmp_path: Path) -> None:
    tap = tmp_path / "stress.tap"
    tap.write_text(
        "TAP version 13\n# Starting 2 tests from 2 test cases.\n"
        "# 18376960 writes, 885 sweeps, 400.8 s, 0 mismatches\n"
        "ok 1 stress.plain.no_lost_writes\n"
    )
    assert soak.findings(tap) == ["# 18376960 writes, 885 sweeps, 400.8 s, 0 mismatches"]
    assert soak.findings(tmp_path / "missing.tap") == []


KMEMLEAK_REPORT = """\
unreferenced object 0xffff888004a1c000 (size 128):
  comm "touched_sweep_t", pid 301, jiffies 4294940000
  hex dump (first 32 bytes):
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................
  backtrace (crc 5a1e2b3c):
    kmem_cache_alloc_noprof+0x1/0x2
    touched_vma_alloc+0x3/0x4
unreferenced object 0xffff888004a1d000 (size 64):
  comm "python3", pid 302, jiffies 4294940001
  backtrace (crc 00000000):
    __kmalloc_noprof+0x1/0x2
"""


def test_kmemleak_each_object_fails(tmp_path: Path) -> None:
    report = tmp_path / "kmemleak.txt"
    report.write_text(KMEMLEAK_REPORT)
    c = suite.kmemleak_counts(report)
    assert (c.passed, c.failed, c.ok) == (0, 2, False)
    report.write_text("")
    c = suite.kmemleak_counts(report)
    assert (c.passed, c.failed, c.ok) == (1, 0, True)


def test_odirect_mismatch_or_missing_result_fails(tmp_path: Path) -> None:
    result = tmp_path / "odirect_mismatches"
    c = suite._odirect_counts(result)
    assert not c.ok and "did not run" in c.note
    result.write_text("")
    c = suite._odirect_counts(result)
    assert not c.ok and "did not run" in c.note
    result.write_text("2\n")
    c = suite._odirect_counts(result)
    assert not c.ok and c.failed == 2
    result.write_text("0\n")
    c = suite._odirect_counts(result)
    assert c.ok and c.passed == 4


def test_junit_counts(tmp_path: Path) -> None:
    xml = tmp_path / "r.xml"
    xml.write_text('<testsuites><testsuite tests="7" failures="1" errors="1" skipped="2"/></testsuites>')
    c = suite.junit_counts("r", xml)
    assert (c.passed, c.failed, c.skipped) == (3, 2, 2)
    assert not suite.junit_counts("r", tmp_path / "missing.xml").ok


def test_failures_are_named_under_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    xml = tmp_path / "r.xml"
    xml.write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="1">'
        '<testcase classname="t.a" name="ok"/>'
        '<testcase classname="t.a" name="bad"><failure/></testcase>'
        '<testcase classname="t.b" name="broken"><error/></testcase>'
        "</testsuite></testsuites>"
    )
    c = suite.junit_counts("r", xml)
    assert c.failures == ["t.a::bad", "t.b::broken"]
    many = suite.Counts("m", failed=20, failures=[f"case {i}" for i in range(20)])
    suite.print_failures([c, suite.Counts("clean", passed=1), many])
    out = capsys.readouterr().out
    assert "r failures:\n  t.a::bad\n  t.b::broken\n" in out
    assert "clean" not in out
    assert "  case 11\n  ... and 8 more\n" in out


def test_mypy_counts() -> None:
    clean = suite.mypy_counts("Success: no issues found in 9 source files\n")
    assert (clean.passed, clean.failed, clean.ok) == (9, 0, True)
    found = suite.mypy_counts(
        "a.py:1: error: x  [misc]\nb.py:2: error: y  [misc]\nFound 2 errors in 2 files (checked 9 source files)\n"
    )
    assert (found.passed, found.failed, found.ok) == (7, 2, False)
    assert not suite.mypy_counts("mypy: can't read file 'x'\n").ok


def test_ruff_counts() -> None:
    findings: list[dict[str, object]] = [{"filename": "/r/a.py"}, {"filename": "/r/a.py"}]
    c = suite.ruff_counts(["/r/a.py", "/r/b.py", "/r/c.py"], findings)
    assert (c.passed, c.failed, c.ok) == (2, 1, False)
    assert suite.ruff_counts(["/r/a.py"], []).ok
    assert not suite.ruff_counts([], []).ok


def test_series_lists_files_each_patch_touches() -> None:
    patches = kbuild.series_patches()
    assert patches, "the patch series is empty"
    touched = {f for p in patches for f in kbuild.patch_files(p)}
    assert "arch/x86/entry/syscalls/syscall_64.tbl" in touched
    assert "include/linux/syscalls.h" in touched
    # New files are overlaid, never patched in.
    assert not touched & set(kbuild.overlay_content())


UPSTREAM_TAP = """\
TAP version 13
1..4
ok 1 # XFAIL mremap - Source and Destination Regions Overlapping
ok 2 Test soft-dirty on anon
not ok 3 2GB mremap - Source PUD-aligned
ok 4 # SKIP Hugetlb shmem testing: all pages must be written
ok 5 Test soft-dirty on anon
"""

UFFD_OUTPUT = """\
Testing register-ioctls on anon... done
Testing sigbus on hugetlb... skipped [reason: memory allocation failed]
Testing events-wp on anon... ERROR: UFFDIO_COPY error: -2
"""


def test_upstream_cases_are_parsed() -> None:
    cases = mmselftests.parse_cases(UPSTREAM_TAP + UFFD_OUTPUT)
    assert cases == {
        "mremap - Source and Destination Regions Overlapping": "xfail",
        "Test soft-dirty on anon": "pass",
        "Test soft-dirty on anon #2": "pass",
        "2GB mremap - Source PUD-aligned": "fail",
        "Hugetlb shmem testing: all pages must be written": "skip",
        "register-ioctls on anon": "pass",
        "sigbus on hugetlb": "skip",
        "events-wp on anon": "fail",
    }


def _results(cases: dict[str, str], exit_status: int = 0) -> dict[str, mmselftests.TestResult]:
    return {t: mmselftests.TestResult(exit_status, dict(cases)) for t in mmselftests.TESTS}


def test_upstream_comparison(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = tmp_path / "baseline.json"
    monkeypatch.setattr(mmselftests, "BASELINE", baseline)
    before = {"a": "pass", "b": "fail", "c": "skip", "d": "xfail"}
    mmselftests.write_baseline(_results(before), "6.12.117")

    same = mmselftests.compare(_results(before))
    assert same.regressions == []
    assert same.known_failures == len(mmselftests.TESTS)

    # A case that passed unpatched and now fails, or is missing, regresses;
    # one that failed unpatched and now passes does not.
    worse = mmselftests.compare(_results({"b": "pass", "c": "skip", "d": "fail"}))
    assert len(worse.regressions) == 2 * len(mmselftests.TESTS)
    crashed = mmselftests.compare(_results(before, exit_status=1))
    assert len(crashed.regressions) == len(mmselftests.TESTS)


def test_flaky_baseline_case_is_not_a_pass() -> None:
    runs = [_results({"a": "pass", "b": "pass", "took 10 ms": "pass"}), _results({"a": "fail", "b": "pass", "took 12 ms": "pass"})]
    merged = mmselftests.merge_runs(runs)
    # A case whose name changes between runs cannot be compared at all.
    assert merged["cow"].cases == {"a": "fail", "b": "pass"}


def test_named_run_keeps_the_first_runs_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vm, "VM_DIR", tmp_path / "vm")
    monkeypatch.setattr(vm, "LOGS", tmp_path / "logs")
    out, console, lock = vm._claim_run_dir()
    assert console.name == "guest-console.log"
    lock.close()
    (out / "result").write_text("first boot")
    audit_out, audit_console, lock = vm._claim_run_dir("audit")
    assert (audit_out.name, audit_console.name) == ("out-audit", "guest-console-audit.log")
    # A second guest while the first holds its claim takes a numbered one.
    busy_out, _, busy_lock = vm._claim_run_dir("audit")
    assert busy_out.name == "out-audit-1"
    lock.close()
    busy_lock.close()
    assert (out / "result").read_text() == "first boot"


def test_tap_nested_by_the_kselftest_runner(tmp_path: Path) -> None:
    # run_kselftest.sh puts each program's TAP under "# " and adds its own line.
    tap = tmp_path / "k.tap"
    tap.write_text(
        "TAP version 13\n1..1\n# timeout set to 600\n"
        "# selftests: touched_sweep: touched_sweep_stress\n"
        "# TAP version 13\n# 1..2\n# ok 1 s.a\n# not ok 2 s.b\n"
        "# # 286107 writes, 17 sweeps (252 calls), ENOMEM target 17, 4.0 s, 0 mismatches\n"
        "# # Totals: pass:1 fail:1 xfail:0 xpass:0 skip:0 error:0\n"
        "not ok 1 selftests: touched_sweep: touched_sweep_stress # exit=1\n"
    )
    c = suite.tap_counts("k", tap)
    assert (c.passed, c.failed, c.ok) == (1, 1, False)
    assert c.failures == ["s.b", "selftests: touched_sweep: touched_sweep_stress # exit=1"]
    assert suite.tap_figures(tap) == "286,107 writes checked, 0 mismatches"


def test_ruff_format_counts() -> None:
    clean = suite.ruff_format_counts("55 files already formatted\n")
    assert (clean.passed, clean.failed, clean.ok) == (55, 0, True)
    new = suite.ruff_format_counts(
        "pysweep/a.py:83:8: unformatted: File would be reformatted\n1 file would be reformatted, 54 files already formatted\n"
    )
    assert (new.passed, new.failed, new.failures, new.ok) == (54, 1, ["pysweep/a.py"], False)
    old = suite.ruff_format_counts("Would reformat: tests/b.py\n1 file would be reformatted, 2 files already formatted\n")
    assert old.failures == ["tests/b.py"] and not old.ok
    assert not suite.ruff_format_counts("error: something\n").ok
