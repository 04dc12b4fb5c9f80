"""make soak: the reliability tests at length, in one boot of the debug kernel.

`make test` runs the lost-write stress, the fuzzer and the fault-injection
test at a size that fits its time budget.  The soak runs the same programs
longer: the stress for a given time, the fuzzer for a given number of calls,
on a kernel booted with kmemleak on.  Any failure, any kernel splat on the
console, and any object kmemleak finds unreferenced at the end fails the
soak.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import kbuild
import vm
from common import BUILD, REPO, stage
from suite import KMEMLEAK, Counts, kmemleak_counts, summary_line, tap_counts

GUEST_SOAK = REPO / "tools" / "testing" / "harness" / "guest-soak"
RESULTS = BUILD / "soak"
DURATION = 600
FUZZ_CALLS = 1_000_000
# Guest time besides the stress: boot, the fuzzer (about 20 s per 10^5
# calls on the debug kernel under TCG) and the fault-injection test.
OVERHEAD = 900

# TAP logs the guest writes, and their names in the summary.
PROGRAMS = {"stress.tap": "lost writes", "fuzz.tap": "fuzz", "fault.tap": "fault injection"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--duration",
        type=int,
        default=DURATION,
        metavar="SECONDS",
        help="how long the lost-write stress runs (default: %(default)s)",
    )
    p.add_argument("--fuzz-calls", type=int, default=FUZZ_CALLS, metavar="N", help="calls the fuzzer makes (default: %(default)s)")


def findings(tap: Path) -> list[str]:
    """The programs' own summary lines: what was checked, and how much."""
    if not tap.exists():
        return []
    keep = re.compile(
        r"^# .*(writes|calls|injected|fault points|"
        r"mismatch|errno)",
        re.IGNORECASE,
    )
    return [line for line in tap.read_text(errors="replace").splitlines() if keep.search(line)]


def run(args: argparse.Namespace) -> int:
    if args.duration < 1 or args.fuzz_calls < 1:
        raise SystemExit("soak: --duration and --fuzz-calls must be positive")
    image = kbuild.build_kernel("debug")
    selftest = kbuild.build_selftests("debug")
    opts = vm.options_from_args(args)
    if not args.timeout:
        opts.timeout = args.duration + OVERHEAD + args.fuzz_calls / 3000
    # make test leaves kmemleak off: it slows the emulated guest too much.
    opts.cmdline = f"kmemleak=on {opts.cmdline}".strip()
    opts.env["HARNESS_SELFTESTS"] = str(selftest.parent)
    opts.env["HARNESS_SOAK_SECONDS"] = str(args.duration)
    opts.env["HARNESS_SOAK_FUZZ_CALLS"] = str(args.fuzz_calls)
    stage(f"soak: stress for {args.duration} s, {args.fuzz_calls} fuzz calls, fault injection (guest timeout {opts.timeout:.0f} s)")
    result = vm.run(image, [str(GUEST_SOAK)], opts, stream=True)
    vm.report(result)

    if RESULTS.exists():
        shutil.rmtree(RESULTS)
    RESULTS.mkdir(parents=True)
    counts: list[Counts] = []
    print("\n==== soak ====")
    for name, label in PROGRAMS.items():
        src = result.out_dir / name
        if src.exists():
            shutil.copy(src, RESULTS / name)
        counts.append(tap_counts(label, RESULTS / name))
        for line in findings(RESULTS / name):
            print(f"{label}: {line.lstrip('# ')}")
    src = result.out_dir / KMEMLEAK
    if src.exists():
        shutil.copy(src, RESULTS / KMEMLEAK)
        counts.append(kmemleak_counts(RESULTS / KMEMLEAK))
    else:
        counts.append(Counts("kmemleak", note="no report"))
    for c in counts:
        print(summary_line(c))
    console_ok = not result.splats
    print(f"{'guest console':16} " + ("clean" if console_ok else f"PROBLEMS ({len(result.splats)})"))
    print(f"results: {RESULTS}; guest console: {result.console_log}")
    ok = all(c.ok for c in counts) and console_ok and result.exit_code == 0
    return 0 if ok else 1
