"""The whole test suite: host tests, then one guest boot, then a summary."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import bench
import kbuild
import mmselftests
import series
import vm
from common import BUILD, REPO, StepFailed, stage

RESULTS = BUILD / "results"
GUEST_SUITE = REPO / "tools" / "testing" / "harness" / "guest-suite"
# Where install-deps puts ruff and mypy; the rest of their configuration
# (mypy's files among it) is in pyproject.toml.
LINT_TOOLS = BUILD / "lint-tools"
RUFF_PATHS = ["pysweep", "tests", "tools/testing/harness", "tools/testing/bench"]


@dataclass
class Counts:
    name: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    note: str = ""  # a problem: the run is not ok
    info: str = ""  # shown in the summary, not a problem
    # What failed, by name, repeated under the summary so that the end of
    # the output alone says what to look at.
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.note


def junit_counts(name: str, path: Path) -> Counts:
    """Pass, fail and skip counts from a pytest JUnit XML file."""
    if not path.exists():
        return Counts(name, note=f"no results ({path.name} missing)")
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    c = Counts(name)
    for s in suites:
        total = int(s.get("tests", 0))
        failed = int(s.get("failures", 0)) + int(s.get("errors", 0))
        skipped = int(s.get("skipped", 0))
        c.failed += failed
        c.skipped += skipped
        c.passed += total - failed - skipped
        for case in s.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                c.failures.append(f"{case.get('classname')}::{case.get('name')}")
    if c.passed + c.failed + c.skipped == 0:
        c.note = "no tests ran"
    return c


def tap_counts(name: str, path: Path) -> Counts:
    """Counts from a kselftest TAP log; a skip in the guest is a failure.

    The guest kernel is the patched one, so a selftest that skips (say on
    ENOSYS) means the feature is missing where it must be present.
    """
    if not path.exists():
        return Counts(name, note="no TAP output")
    text = path.read_text(errors="replace")
    m = re.search(
        r"# Totals: pass:(\d+) fail:(\d+) xfail:(\d+) xpass:(\d+) "
        r"skip:(\d+) error:(\d+)",
        text,
    )
    if not m:
        return Counts(name, note="TAP output has no totals (crashed?)")
    p, f, xf, xp, s, e = map(int, m.groups())
    c = Counts(name, passed=p + xf, failed=f + xp + e, skipped=s)
    # The kselftest runner nests each program's TAP under "# ".
    c.failures = re.findall(r"^(?:# )*not ok \d+ (.*)$", text, re.M)
    if s:
        c.note = f"{s} skipped in the patched guest"
    return c


def run_host_tests() -> Counts:
    stage("host tests: pytest tests/host")
    xml = RESULTS / "host-pytest.xml"
    subprocess.call(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs", "tests/host", f"--junitxml={xml}"], cwd=REPO
    )
    return junit_counts("host pytest", xml)


def run_checkpatch() -> Counts:
    """The upstream series: every patch applies in order, checkpatch-clean.

    A patch counts as passed when checkpatch.pl --strict finds no error, no
    warning and no check that kernel/patches/checkpatch-checks does not
    justify; the whole stage fails if the series cannot be built.
    """
    stage("the upstream series (make patches): apply in order, checkpatch --strict")
    c = Counts("checkpatch")
    try:
        _, report = series.make_patches()
    except StepFailed as e:
        print(e, flush=True)
        c.note = "the series does not apply in order"
        return c
    findings = report.errors + report.warnings + report.unjustified
    for line in findings:
        print(f"checkpatch: {line}", flush=True)
    bad = {line.split(":", 1)[0] for line in findings}
    for name in report.per_patch:
        if name in bad:
            c.failed += 1
        else:
            c.passed += 1
    c.info = f"{len(report.per_patch)} patches, {sum(report.checks.values())} justified checks"
    return c


def _lint_run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a lint tool from the repository, with build/lint-tools importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(LINT_TOOLS), env.get("PYTHONPATH")) if p)
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)


def _has_module(name: str) -> bool:
    probe = _lint_run([sys.executable, "-c", f"import {name}"])
    return probe.returncode == 0


def ruff_counts(files: list[str], findings: list[dict[str, object]]) -> Counts:
    """Files ruff checked that are clean pass; files with findings fail."""
    bad = {str(f["filename"]) for f in findings}
    c = Counts("ruff", passed=len(set(files) - bad), failed=len(bad))
    if findings:
        c.info = f"{len(findings)} finding(s)"
    elif not files:
        c.note = "no files checked"
    return c


def _ruff() -> list[str]:
    # The ruff binary pip installed beside the package, which `python -m
    # ruff` might not pick over another one of the interpreter's.
    binary = LINT_TOOLS / "bin" / "ruff"
    return [str(binary)] if binary.exists() else [sys.executable, "-m", "ruff"]


def run_ruff() -> Counts:
    stage("lint: ruff check " + " ".join(RUFF_PATHS))
    if not _has_module("ruff"):
        return Counts("ruff", note="ruff is not installed (make deps)")
    ruff = _ruff()
    listed = _lint_run([*ruff, "check", "--show-files", *RUFF_PATHS])
    checked = _lint_run([*ruff, "check", "--output-format", "json", *RUFF_PATHS])
    if listed.returncode != 0 or checked.returncode not in (0, 1):
        print((listed.stderr + checked.stderr).strip(), flush=True)
        return Counts("ruff", note="ruff did not run")
    findings = json.loads(checked.stdout)
    for f in findings:
        where = Path(f["filename"]).relative_to(REPO)
        loc = f["location"]
        print(f"{where}:{loc['row']}:{loc['column']}: {f['code']} {f['message']}", flush=True)
    files = [line for line in listed.stdout.splitlines() if line]
    return ruff_counts(files, findings)


def ruff_format_counts(output: str) -> Counts:
    """Counts from ``ruff format --check``: a file it would change fails."""
    # Older ruff says "Would reformat: FILE", newer "FILE:L:C: unformatted: ...".
    found = re.findall(r"^(?:Would reformat: (.+)|(.+?):\d+:\d+: unformatted: .*)$", output, re.M)
    bad = sorted({old or new for old, new in found})
    m = re.search(r"(\d+) files? already formatted", output)
    c = Counts("ruff format", passed=int(m.group(1)) if m else 0, failed=len(bad), failures=bad)
    if not m and not bad:
        c.note = "ruff format did not run"
    return c


def run_ruff_format() -> Counts:
    stage("lint: ruff format --check " + " ".join(RUFF_PATHS))
    if not _has_module("ruff"):
        return Counts("ruff format", note="ruff is not installed (make deps)")
    proc = _lint_run([*_ruff(), "format", "--check", "--output-format", "concise", *RUFF_PATHS])
    c = ruff_format_counts(proc.stdout + proc.stderr)
    for name in c.failures:
        print(f"{name}: not formatted (run: ruff format {name})", flush=True)
    return c


def mypy_counts(output: str) -> Counts:
    """Counts from mypy's closing line: a file with errors is a failure."""
    m = re.search(r"^Success: no issues found in (\d+) source file", output, re.M)
    if m:
        return Counts("mypy", passed=int(m.group(1)))
    m = re.search(
        r"^Found (\d+) errors? in (\d+) files? "
        r"\(checked (\d+) source files?\)",
        output,
        re.M,
    )
    if not m:
        return Counts("mypy", note="mypy did not finish")
    errors, bad, checked = map(int, m.groups())
    return Counts("mypy", passed=checked - bad, failed=bad, info=f"{errors} error(s)")


def run_mypy() -> Counts:
    stage("lint: mypy (strict, on the files pyproject.toml names)")
    if not _has_module("mypy"):
        return Counts("mypy", note="mypy is not installed (make deps)")
    proc = _lint_run([sys.executable, "-m", "mypy"])
    c = mypy_counts(proc.stdout)
    if not c.ok:
        print((proc.stdout + proc.stderr).strip(), flush=True)
    return c


def run_lint() -> list[Counts]:
    """ruff (lint and format) and mypy over the Python code; a few seconds."""
    return [run_ruff(), run_ruff_format(), run_mypy()]


def summary_line(c: Counts) -> str:
    line = f"{c.name:16} {c.passed:4} passed, {c.failed:3} failed, {c.skipped:3} skipped"
    remark = c.note or c.info
    return line + (f"  ({remark})" if remark else "")


# Failures listed under the summary, per line of it; the full list is
# further up in the output.
FAILURES_SHOWN = 12


def print_failures(counts: list[Counts]) -> None:
    """Name what failed, under the summary."""
    for c in counts:
        if not c.failures:
            continue
        print(f"{c.name} failures:")
        for name in c.failures[:FAILURES_SHOWN]:
            print(f"  {name}")
        if len(c.failures) > FAILURES_SHOWN:
            print(f"  ... and {len(c.failures) - FAILURES_SHOWN} more")


def lint() -> int:
    """`harness lint`: the lint stage alone."""
    counts = run_lint()
    print("\n==== summary ====")
    for c in counts:
        print(summary_line(c))
    return 0 if all(c.ok for c in counts) else 1


# The TAP logs guest-suite writes, one per kselftest program, and the names
# the summary gives them.
# kmemleak's report, written by guest-suite when the kernel has kmemleak.
KMEMLEAK = "kmemleak.txt"
KSELFTESTS = {
    "touched_sweep_test.tap": "kselftest args",
    "touched_sweep_core_test.tap": "kselftest core",
    "touched_sweep_fault_test.tap": "kselftest fault",
    "touched_sweep_stress.tap": "kselftest stress",
}


def run_guest_tests(args: argparse.Namespace, image: Path) -> tuple[list[Counts], vm.RunResult]:
    selftest = kbuild.build_selftests(args.flavour)
    # Not run here (make bench does), but kept compiling.
    bench.compile_bench(args.flavour)
    opts = vm.options_from_args(args)
    # Two emulated NUMA nodes, so that the migration tests have somewhere
    # to move pages to.
    opts.cmdline = f"numa=fake=2 {opts.cmdline}".strip()
    opts.env["HARNESS_SELFTESTS"] = str(selftest.parent)
    # The baseline was recorded on the debug configuration; other kernels
    # lack some of what the upstream tests use (CONFIG_GUP_TEST).
    run_mm = args.flavour == "debug"
    if run_mm:
        mm_dir = mmselftests.build(kbuild.TREE, kbuild.headers_dir(args.flavour))
        opts.env["HARNESS_MM_SELFTESTS"] = str(mm_dir)
    stage(f"guest tests on the {args.flavour} kernel")
    result = vm.run(image, [str(GUEST_SUITE)], opts, stream=True)
    vm.report(result)
    for name in (*KSELFTESTS, "guest-pytest.xml", KMEMLEAK):
        src = result.out_dir / name
        if src.exists():
            (RESULTS / name).write_bytes(src.read_bytes())
    counts = [tap_counts(label, RESULTS / name) for name, label in KSELFTESTS.items()]
    for c, name in zip(counts, KSELFTESTS, strict=True):
        c.info = tap_figures(RESULTS / name)
    counts.append(junit_counts("guest pytest", RESULTS / "guest-pytest.xml"))
    if run_mm:
        counts.append(mm_counts(mmselftests.collect(result.out_dir / "mm")))
    if (RESULTS / KMEMLEAK).exists():
        counts.append(kmemleak_counts(RESULTS / KMEMLEAK))
    return counts, result


GUEST_AUDIT = REPO / "tools" / "testing" / "harness" / "guest-audit"
AUDIT_TESTS = {
    "audit-touched_sweep_test.tap": "audit interface",
    "audit-touched_sweep_core_test.tap": "audit core",
    "audit-touched_sweep_fault_test.tap": "audit fault",
    "audit-touched_sweep_stress.tap": "audit stress",
}


def run_audit_boot(args: argparse.Namespace, image: Path) -> tuple[list[Counts], vm.RunResult]:
    """A second boot with CONFIG_DEBUG_TOUCHED_SWEEP's content audit on.

    The project's kselftests and a shorter stress run again, then the
    upstream mm selftests of the suite and O_DIRECT reads with every new
    mapping tracked and a sweeper clearing marks; a report of the check, on
    the console or counted, fails the run, and so does an O_DIRECT read
    that differs from what was written.
    """
    selftest = kbuild.build_selftests(args.flavour)
    opts = vm.options_from_args(args)
    opts.cmdline = f"numa=fake=2 touched_check.audit=1 {opts.cmdline}".strip()
    opts.env["HARNESS_SELFTESTS"] = str(selftest.parent)
    opts.env["HARNESS_MM_SELFTESTS"] = str(mmselftests.build(kbuild.TREE, kbuild.headers_dir(args.flavour)))
    stage("audit boot: the debug check of touched_sweep's promise")
    result = vm.run(image, [str(GUEST_AUDIT)], opts, stream=True, name="audit")
    vm.report(result)
    counts = []
    for name, label in AUDIT_TESTS.items():
        src = result.out_dir / name
        if src.exists():
            (RESULTS / name).write_bytes(src.read_bytes())
        counts.append(tap_counts(label, RESULTS / name))
    reports = result.out_dir / "check_reports"
    c = Counts("check reports")
    if not reports.exists():
        c.note = "the audit did not finish"
    elif int(reports.read_text().strip() or "0"):
        c.failed = int(reports.read_text().strip())
        c.note = f"{c.failed} write(s) the tracking missed, see the console"
    else:
        c.passed = 1
    counts.append(c)
    counts.append(_odirect_counts(result.out_dir / "odirect_mismatches"))
    return counts, result


def _odirect_counts(path: Path) -> Counts:
    """The audit boot's O_DIRECT reads, 4 of them: each must read back
    exactly what was written while the sweeper cleared dd's buffer."""
    c = Counts("audit O_DIRECT")
    if not path.exists() or not path.read_text().strip():
        c.note = "the O_DIRECT reads did not run"
        c.failed = 1
    elif int(path.read_text().strip()):
        c.failed = int(path.read_text().strip())
        c.note = f"{c.failed} of 4 reads differ from the file"
    else:
        c.passed = 4
    return c


def kmemleak_counts(path: Path) -> Counts:
    """kmemleak's report after the guest tests: every object is a failure."""
    text = path.read_text(errors="replace")
    leaks = re.split(r"(?m)^(?=unreferenced object)", text)
    leaks = [leak for leak in leaks if leak.startswith("unreferenced object")]
    for leak in leaks[:3]:
        print(f"kmemleak:\n{leak.rstrip()}", flush=True)
    c = Counts("kmemleak", passed=0 if leaks else 1, failed=len(leaks))
    if leaks:
        c.note = f"{len(leaks)} unreferenced object(s), see {path}"
    return c


def tap_figures(path: Path) -> str:
    """What a reliability test checked, from the lines it logs."""
    if not path.exists():
        return ""
    text = path.read_text(errors="replace")
    runs = re.findall(r"^(?:# )+(\d+) writes, .*, (\d+) mismatches$", text, re.M)
    if runs:
        writes = sum(int(w) for w, _ in runs)
        mismatches = sum(int(m) for _, m in runs)
        return f"{writes:,} writes checked, {mismatches} mismatches"
    fuzz = re.search(r"(\d+) calls: \d+ succeeded, (\d+) distinct errnos", text)
    if fuzz:
        return f"{int(fuzz[1]):,} fuzz calls, {fuzz[2]} distinct errnos"
    failures = re.findall(r"(\d+) injected failures in all", text)
    if failures:
        return f"{sum(map(int, failures))} injected failures"
    return ""


def mm_counts(results: dict[str, mmselftests.TestResult]) -> Counts:
    """Upstream mm selftests: a failure is a case that regressed."""
    cmp = mmselftests.compare(results)
    c = Counts("upstream mm", passed=cmp.passed, failed=len(cmp.regressions), skipped=cmp.skipped, failures=cmp.regressions)
    for line in cmp.regressions:
        print(f"upstream mm selftest regression: {line}", flush=True)
    if cmp.known_failures:
        c.info = f"{cmp.known_failures} case(s) fail unpatched too"
    return c


def run_suite(args: argparse.Namespace) -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for stale in RESULTS.iterdir():
        stale.unlink()
    counts = [run_host_tests()]
    counts += run_lint()
    image = kbuild.build_kernel(args.flavour)
    counts.append(run_checkpatch())
    guest_counts, result = run_guest_tests(args, image)
    counts += guest_counts
    results = [result]
    if args.flavour == "debug":
        audit_counts, audit_result = run_audit_boot(args, image)
        counts += audit_counts
        results.append(audit_result)

    console = Counts("guest console")
    for r in results:
        if r.splats:
            console.failed += len(r.splats)
            console.note = f"{console.failed} kernel problem(s), see above"
        elif r.timed_out:
            console.note = "guest timed out"
        elif r.command_status is None:
            console.note = "guest ended before the tests finished"

    print("\n==== summary ====")
    for c in counts:
        print(summary_line(c))
    line = f"{console.name:16} " + ("clean" if console.ok else "PROBLEMS")
    print(line + (f"  ({console.note})" if console.note else ""))
    print_failures(counts)
    passed = sum(c.passed for c in counts)
    failed = sum(c.failed for c in [*counts, console])
    skipped = sum(c.skipped for c in counts)
    ok = all(c.ok for c in [*counts, console]) and all(r.exit_code == 0 for r in results)
    if not ok and failed == 0:
        failed = 1  # a run that did not finish counts as a failure
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    print(f"results: {RESULTS}; guest console: {', '.join(str(r.console_log) for r in results)}")
    return 0 if ok else 1
