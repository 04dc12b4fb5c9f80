"""Upstream mm selftests on the patched kernel, against an unpatched baseline.

The patch must leave soft-dirty, PAGEMAP_SCAN, mremap, userfaultfd, COW and
mkdirty behaving exactly as before.  Under emulation some upstream cases
fail or skip on the unpatched kernel too, so the patched kernel is judged
against a baseline recorded on the unpatched ("vanilla") debug kernel in
the same guest setup: every case that passed there must pass here.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from common import BUILD, REPO, StepFailed, log_path, run_logged, stage

TESTS = ["soft-dirty", "pagemap_ioctl", "mremap_test", "uffd-unit-tests", "cow", "mkdirty"]
BASELINE = REPO / "tools" / "testing" / "harness" / "mm-baseline.json"
GUEST_SCRIPT = REPO / "tools" / "testing" / "harness" / "guest-mm-selftests"
# A fix to the tests, not to the kernel: uffd-unit-tests' poll thread
# wakes a fault it finds stale after UFFD_EVENT_REMOVE instead of failing
# (the race is in 6.12 itself; the patch says which).
TEST_PATCH = REPO / "tools" / "testing" / "harness" / "mm-selftests-uffd.patch"
OUT = BUILD / "selftests" / "mm"

PASSING = {"pass", "xfail"}
_TAP = re.compile(r"^(not ok|ok) \d+ (.*)$")
# uffd-unit-tests prints "Testing NAME... done|skipped [...]|failed [...]".
_UFFD = re.compile(r"^Testing (.+?)\.\.\. (.*)$")


def patch_tests(tree: Path) -> None:
    """Apply TEST_PATCH to @tree once; it is build output, never committed."""
    argv = ["patch", "-p1", "--force", "--silent", "-d", str(tree), "-i", str(TEST_PATCH)]
    # --force: a patch that does not reverse fails instead of being
    # taken as reversed the other way round.
    if subprocess.run([*argv, "-R", "--dry-run"], capture_output=True, check=False).returncode == 0:
        return
    run_logged("patching the upstream mm selftests", [*argv, "--no-backup-if-mismatch", "-r", "-"], log_path("mm-selftests-patch"))


def build(tree: Path, headers: Path) -> Path:
    """Build the upstream tests from @tree against @headers."""
    stage("building the upstream mm selftests")
    OUT.mkdir(parents=True, exist_ok=True)
    patch_tests(tree)
    src = tree / "tools" / "testing" / "selftests" / "mm"
    run_logged(
        "mm selftest build",
        ["make", "-C", src, f"OUTPUT={OUT}", f"KHDR_INCLUDES=-isystem {headers}", *(str(OUT / t) for t in TESTS)],
        log_path("mm-selftests"),
        excerpt=r"error:",
    )
    return OUT


def parse_cases(text: str) -> dict[str, str]:
    """Case name -> pass, fail, skip or xfail, from TAP or uffd output."""
    cases: dict[str, str] = {}
    seen: Counter[str] = Counter()

    def add(name: str, status: str) -> None:
        seen[name] += 1
        key = name if seen[name] == 1 else f"{name} #{seen[name]}"
        cases[key] = status

    for line in text.splitlines():
        m = _TAP.match(line)
        if m:
            verdict, desc = m.groups()
            # kselftest writes "ok 3 # SKIP why"; TAP also has "ok 3 name # SKIP".
            if desc.startswith("# "):
                directive, _, name = desc[2:].partition(" ")
            else:
                name, _, directive = desc.partition(" # ")
            directive = directive.upper()
            if directive.startswith("SKIP"):
                status = "skip"
            elif directive.startswith("XFAIL"):
                status = "xfail"
            else:
                status = "pass" if verdict == "ok" else "fail"
            add(name.strip(), status)
            continue
        m = _UFFD.match(line)
        if m:
            name, rest = m.groups()
            status = "pass" if rest.startswith("done") else "skip" if rest.startswith("skipped") else "fail"
            add(name.strip(), status)
    return cases


@dataclass
class TestResult:
    exit_status: int | None
    cases: dict[str, str] = field(default_factory=dict)


def collect(out_dir: Path) -> dict[str, TestResult]:
    """Results the guest script left in @out_dir (the guest's $HARNESS_OUT/mm)."""
    results = {}
    for t in TESTS:
        tap = out_dir / f"{t}.tap"
        status = out_dir / f"{t}.status"
        results[t] = TestResult(
            exit_status=int(status.read_text()) if status.exists() else None,
            cases=parse_cases(tap.read_text(errors="replace")) if tap.exists() else {},
        )
    return results


def merge_runs(runs: list[dict[str, TestResult]]) -> dict[str, TestResult]:
    """Cases every run reported, passing only if they passed every time.

    Some upstream cases put measurements in their names ("Extra pages 109
    (0.2%)"); such a name differs between runs and is left out.
    """
    merged = {}
    for t in TESTS:
        results = [r[t] for r in runs]
        statuses = {r.exit_status for r in results}
        exit_status = statuses.pop() if len(statuses) == 1 else None
        names = set.intersection(*(set(r.cases) for r in results))
        cases: dict[str, str] = {}
        for name in sorted(names):
            seen = [r.cases[name] for r in results]
            failing = [s for s in seen if s not in PASSING]
            cases[name] = failing[0] if failing else seen[0]
        merged[t] = TestResult(exit_status, cases)
    return merged


def write_baseline(results: dict[str, TestResult], release: str) -> None:
    BASELINE.write_text(
        json.dumps(
            {
                "kernel": release,
                "recorded": time.strftime("%Y-%m-%d"),
                "tests": {t: {"exit_status": r.exit_status, "cases": r.cases} for t, r in results.items()},
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )


@dataclass
class Comparison:
    passed: int = 0
    skipped: int = 0
    regressions: list[str] = field(default_factory=list)
    known_failures: int = 0


def compare(results: dict[str, TestResult]) -> Comparison:
    """Judge @results against the recorded baseline."""
    if not BASELINE.exists():
        raise StepFailed(f"{BASELINE.name} is missing: record it with 'harness mm-baseline'")
    base = json.loads(BASELINE.read_text())["tests"]
    c = Comparison()
    for t in TESTS:
        now = results.get(t, TestResult(None))
        was = base.get(t, {"exit_status": None, "cases": {}})
        if was["exit_status"] == 0 and now.exit_status != 0:
            c.regressions.append(f"{t}: exit status {now.exit_status}, 0 on the unpatched kernel")
        for case, before in was["cases"].items():
            after = now.cases.get(case, "missing")
            if before in PASSING and after not in PASSING:
                c.regressions.append(f"{t}: {case}: {after}, {before} on the unpatched kernel")
            elif before not in PASSING and before != "skip":
                c.known_failures += 1
        c.passed += sum(s in PASSING for s in now.cases.values())
        c.skipped += sum(s == "skip" for s in now.cases.values())
    return c
