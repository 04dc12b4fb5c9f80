"""harness: build the patched kernel, boot it in QEMU and run tests in it.

Run as `python3 tools/testing/harness COMMAND`; `make help` lists the make
targets that wrap it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench
import kbuild
import mmselftests
import series
import soak
import suite
import vm
from common import BUILD, StepFailed, fail, show, stage


def _flavour_arg(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--flavour",
        choices=sorted(kbuild.FLAVOURS),
        default=default,
        help=f"plain: the benchmark kernel; debug: adds KASAN, lockdep, DEBUG_VM and DEBUG_ATOMIC_SLEEP (default: {default})",
    )


def record_mm_baseline(args: argparse.Namespace) -> int:
    image = kbuild.build_kernel("vanilla")
    mm_dir = mmselftests.build(kbuild.VANILLA_TREE, kbuild.headers_dir("vanilla"))
    opts = vm.options_from_args(args)
    opts.env["HARNESS_MM_SELFTESTS"] = str(mm_dir)
    runs = []
    for n in range(1, args.runs + 1):
        stage(f"upstream mm selftests on the unpatched kernel, run {n}")
        result = vm.run(image, [str(mmselftests.GUEST_SCRIPT)], opts, stream=True)
        vm.report(result)
        if result.exit_code != 0:
            return result.exit_code
        runs.append(mmselftests.collect(result.out_dir / "mm"))
    merged = mmselftests.merge_runs(runs)
    mmselftests.write_baseline(merged, kbuild.kernel_release("vanilla"))
    total = sum(len(r.cases) for r in merged.values())
    stage(f"baseline: {total} cases in {mmselftests.BASELINE}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness", description="Build the touched_sweep kernel and test it in QEMU.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("kernel", help="build the patched guest kernel")
    _flavour_arg(p, "plain")
    p.add_argument("--selftests", action="store_true", help="also build the kselftests")

    p = sub.add_parser(
        "run",
        help="boot the kernel and run one command in the guest",
        description="Boot the kernel (building it if needed) and run COMMAND "
        "as root in the guest, from the repository directory. "
        "The guest's / is the host's, read-only; /tmp is a "
        "tmpfs; $HARNESS_OUT is a writable directory that comes "
        "back to the host.  The exit status is the command's, or "
        "1 if the kernel reported a problem on the console.",
    )
    _flavour_arg(p, "debug")
    vm.add_run_arguments(p)
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="command to run after --")

    p = sub.add_parser(
        "test", help="the whole suite: host tests, then one guest boot with the selftests and the guest Python tests"
    )
    _flavour_arg(p, "debug")
    vm.add_run_arguments(p)

    sub.add_parser("lint", help="ruff and mypy over the Python code (part of 'test')")

    p = sub.add_parser(
        "mm-baseline",
        help="record the upstream mm selftest results of the unpatched debug kernel, which 'harness test' compares against",
        description="Build the unpatched ('vanilla') debug kernel, run the "
        "upstream mm selftests in it RUNS times, and write the "
        f"cases that passed every time to {mmselftests.BASELINE}.",
    )
    p.add_argument("--runs", type=int, default=2, help="boots to run (default: %(default)s)")
    vm.add_run_arguments(p)

    p = sub.add_parser(
        "bench",
        help="benchmark touched_sweep against PAGEMAP_SCAN and soft-dirty",
        description="Build the kernel and the benchmark "
        f"({show(bench.SOURCE)}), boot the kernel once to "
        "run it, then write build/bench/results.json, the PNG plots and a "
        "table with the targets.  A missed target is reported, not an error: "
        "the exit status is non-zero only if the run or the benchmark failed.",
        epilog="Arguments after -- go to the benchmark program as they are; scenario "
        "names (size, clustered, touched, vmas, first_write, memory, thp, threads, and binding, "
        "which pysweep_bench.py measures) run only those, "
        "e.g. 'harness bench --quick -- size vmas'.  Through make: "
        "make bench HARNESS_ARGS='--quick -- size vmas'.",
    )
    _flavour_arg(p, "plain")
    vm.add_run_arguments(p)
    p.set_defaults(memory=bench.MEMORY, timeout=bench.TIMEOUT)
    p.add_argument("--runs", type=int, metavar="N", help="repetitions of each measurement (the benchmark's -r; default: its own)")
    p.add_argument(
        "--quick", action="store_true", help="fewer and smaller steps, to check that the benchmark works (the benchmark's -q)"
    )
    p.add_argument(
        "--report-only",
        type=Path,
        metavar="JSONL",
        help="boot nothing: re-make the results, plots and table from "
        f"JSONL (e.g. {show(bench.RAW_JSONL)}); "
        "the accelerator, date and guest size come from the "
        "run.json beside it if there is one; --accel tcg|kvm "
        "names the accelerator",
    )
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="further options for the benchmark program, after --")

    p = sub.add_parser(
        "soak",
        help="the reliability tests at length on the debug kernel",
        description="Boot the debug kernel once and run the lost-write stress "
        "for --duration seconds, the fuzzer for --fuzz-calls calls "
        "and the fault-injection test.  TAP logs go to "
        f"{soak.RESULTS.relative_to(BUILD.parent)}/.  Any failure or "
        "kernel splat fails the soak.  The guest timeout follows "
        "from the duration unless --timeout is given.",
    )
    vm.add_run_arguments(p)
    p.set_defaults(timeout=0.0)
    soak.add_arguments(p)

    p = sub.add_parser(
        "patches",
        help="write the upstream patch series into build/patches",
        description="Rebuild the change as a series against Linux 6.12 "
        "(kernel/patches plus the new files, each added by the "
        "patch kernel/patches/new-files names), write it with a "
        f"cover letter into {series.OUT.relative_to(BUILD.parent)}/ "
        "and run checkpatch.pl --strict on every patch.  Fails if a "
        "patch does not apply in order, or checkpatch reports an "
        "error, a warning or a check that "
        "kernel/patches/checkpatch-checks does not justify.",
    )

    p = sub.add_parser(
        "check-patches",
        help="make patches, then apply and build the series one patch at a time, and cross-build arm64",
        description="Write the series as 'patches' does, apply it one patch "
        "at a time to a fresh 6.12 tree and build the kernel "
        "(and W=1 the new files) after each patch; build the "
        "selftests and check the documentation (kernel-doc, "
        "Sphinx) once the series adds them; cross-build the "
        "result for arm64 and boot it in qemu-system-aarch64 to "
        "run the selftests.  Compiler warnings count as "
        "failures.  Results: "
        f"{series.CHECK_RESULTS.relative_to(BUILD.parent)}.",
    )
    p.add_argument("--no-arm64", dest="arm64", action="store_false", help="skip the arm64 cross-build and boot")
    p.add_argument("--no-boot", dest="boot", action="store_false", help="cross-build arm64 but do not boot it")

    p = sub.add_parser("probe-kvm", help="say whether KVM really works here")

    args = parser.parse_args(argv)
    try:
        if args.command == "kernel":
            kbuild.build_kernel(args.flavour)
            if args.selftests:
                kbuild.build_selftests(args.flavour)
            return 0
        if args.command == "run":
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            if not cmd:
                parser.error("run: give a command after --")
            image = kbuild.build_kernel(args.flavour)
            result = vm.run(image, cmd, vm.options_from_args(args), stream=True)
            vm.report(result)
            return result.exit_code
        if args.command == "test":
            return suite.run_suite(args)
        if args.command == "lint":
            return suite.lint()
        if args.command == "mm-baseline":
            return record_mm_baseline(args)
        if args.command == "soak":
            return soak.run(args)
        if args.command == "bench":
            if args.report_only:
                return bench.report_only(args.report_only, args.accel)
            extra = args.bench_args[1:] if args.bench_args[:1] == ["--"] else args.bench_args
            if args.runs is not None:
                if args.runs < 1:
                    parser.error("bench: --runs must be at least 1")
                extra = ["-r", str(args.runs), *extra]
            if args.quick:
                extra = ["-q", *extra]
            return bench.run(args.flavour, vm.options_from_args(args), extra)
        if args.command == "patches":
            series.require_clean(series.make_patches()[1])
            return 0
        if args.command == "check-patches":
            return series.check_patches(args.arm64, args.boot)
        if args.command == "probe-kvm":
            ok, why = vm.kvm_usable(force=True)
            print(("KVM usable: " if ok else "KVM not usable: ") + why)
            return 0
    except StepFailed as e:
        fail(str(e))
    except KeyboardInterrupt:
        stage("interrupted")
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
