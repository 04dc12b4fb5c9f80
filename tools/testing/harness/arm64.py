"""Build the patched kernel for arm64, boot it in QEMU and run the kselftests.

The x86 guests boot the host's root file system over virtio-9p; an arm64
guest cannot run the host's x86 programs, so it boots from an initramfs
instead: a static init (arm64-init.c) and the four touched_sweep
kselftests, all cross-compiled and static.  The init runs each selftest
with a time limit, writes the TAP output to the serial console between
marker lines, and powers the machine off.  The host cuts the console log
into one TAP file per selftest, counts them as `harness test` does, and
scans the console for kernel splats.

arm64 has no soft-dirty PTE bit (CONFIG_MEM_SOFT_DIRTY is x86, s390 and
powerpc only), so this run shows that touched_sweep() needs no
architecture-specific page-table bits.

    python3 tools/testing/harness/arm64.py [--no-boot] [--tree DIR] [--obj DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Run as a script, this directory is already on sys.path; imported from
# elsewhere, harness's modules must still import each other by bare name.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import kbuild
import suite
import vm
from common import BUILD, StepFailed, log_path, run_logged, show, stage

HARNESS_DIR = Path(__file__).resolve().parent
ARM64_CONFIG = kbuild.CONFIGS / "arm64.config"
INIT_SOURCE = HARNESS_DIR / "arm64-init.c"
OBJ = BUILD / "obj-arm64"
# Everything else the arm64 run makes: init, selftests, initramfs, TAP.
OUT = BUILD / "arm64"
CONSOLE_LOG_NAME = "arm64-console"

CROSS_COMPILE = "aarch64-linux-gnu-"
QEMU = "qemu-system-aarch64"
SELFTESTS = ("touched_sweep_test", "touched_sweep_core_test", "touched_sweep_fault_test", "touched_sweep_stress")

# Under TCG, max runs the selftests as fast as cortex-a72 (the kernel has no
# pointer authentication; for user space the cheaper implementation-defined
# algorithm is asked for all the same), and unlike cortex-a72 it has
# hardware dirty-bit management (FEAT_HAFDBS), so the run covers PTEs that
# are writable and clean, which the CPU dirties without a fault.
DEFAULT_CPU = "max,pauth-impdef=on"
DEFAULT_TIMEOUT = 1800.0
DEFAULT_TEST_TIMEOUT = 600
DEFAULT_MEMORY_MIB = 2048
DEFAULT_CPUS = 2
# The lost-write stress's minimum number of writes (its default is 10
# times more).  Under TCG its other minimum, 64 sweep rounds, usually
# takes longer, so the run lasts 15 to 20 seconds either way.
STRESS_WRITES = 200000

# The init's console markers (arm64-init.c).
MARK = "harness-arm64:"
BEGIN_RE = re.compile(rf"^{MARK} begin (\S+)$", re.M)
END_RE = re.compile(rf"^{MARK} end (\S+) status=(\S+) seconds=([\d.]+)$", re.M)
DONE_RE = re.compile(rf"^{MARK} done tests=(\d+) failed=(\d+)", re.M)

EM_AARCH64 = 183
PT_INTERP = 3


@dataclass
class TestResult:
    """One selftest program's run in the guest."""

    name: str
    status: str  # "exit:N", "signal:N", "timeout", or "did not run"
    seconds: float
    counts: suite.Counts

    @property
    def ok(self) -> bool:
        # A skip in the patched guest means the kernel or the guest lacks
        # something the test needs: as in `harness test`, it fails the run.
        return self.status == "exit:0" and self.counts.ok and not self.counts.skipped


@dataclass
class BootResult:
    """What one boot of the arm64 guest found."""

    tests: list[TestResult]
    splats: list[str]
    console_log: Path
    timed_out: bool
    finished: bool  # the init reached its final marker
    # Wall-clock seconds: "boot+tests", and "build" when main() built too.
    times: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.finished and not self.timed_out and not self.splats and all(t.ok for t in self.tests)

    def problems(self) -> list[str]:
        """Why the run failed, one reason a line; empty if it did not."""
        why = []
        if self.timed_out:
            why.append("the guest timed out")
        elif not self.finished:
            why.append("the guest ended before its init finished")
        if self.splats:
            why.append(f"{len(self.splats)} kernel splat(s) on the console")
        for t in self.tests:
            if t.ok:
                continue
            if t.status == "did not run":
                why.append(f"{t.name} did not run")
            elif t.status != "exit:0":
                why.append(f"{t.name} ended with {t.status}")
            else:
                why.append(
                    f"{t.name}: {t.counts.failed} failed, "
                    f"{t.counts.skipped} skipped" + (f" ({t.counts.note})" if t.counts.note else "")
                )
        return why


def _cc() -> str:
    gcc = f"{CROSS_COMPILE}gcc"
    if not shutil.which(gcc):
        raise StepFailed(f"{gcc} not found (tools/testing/harness/install-deps --patches installs gcc-aarch64-linux-gnu)")
    return f"ccache {gcc}" if shutil.which("ccache") else gcc


def _make_vars() -> list[str]:
    # The same CC for configuring as for building: Kconfig probes the
    # compiler, and a different CC would make the build reconfigure.
    return ["ARCH=arm64", f"CROSS_COMPILE={CROSS_COMPILE}", f"CC={_cc()}"]


def _make(tree: Path, obj: Path) -> list[str | os.PathLike[str]]:
    return ["make", "-C", tree, f"O={obj}", *_make_vars()]


def fragments(tree: Path, extra: Sequence[Path] = ()) -> list[Path]:
    """The config fragments merged on tinyconfig; later ones win.

    @extra come last, to try a variant (say 16K pages) in another obj.
    """
    return [tree / kbuild.SELFTEST_DIR / "config", ARM64_CONFIG, *extra]


def configure(tree: Path, obj: Path, extra: Sequence[Path] = ()) -> None:
    """tinyconfig plus the fragments, redone only when an input changed."""
    kbuild.configure_tree(tree, obj, fragments(tree, extra), "arm64", _make_vars())


def build_arm64(tree: Path, obj: Path, extra_fragments: Sequence[Path] = ()) -> Path:
    """Configure if needed, build Image and install the uapi headers.

    Returns the Image.  The headers go to obj/usr/include, for the
    selftests to compile against.  @extra_fragments are merged after the
    usual ones.
    """
    configure(tree, obj, extra_fragments)
    image = obj / "arch" / "arm64" / "boot" / "Image"
    before = image.stat().st_mtime if image.exists() else None
    log = log_path("arm64-kernel")
    stage(f"building the arm64 kernel (log: {show(log)})")
    try:
        run_logged(
            "arm64 kernel build",
            [*_make(tree, obj), f"-j{kbuild._jobs()}", "Image"],
            log,
            env=kbuild.BUILD_ENV,
            excerpt=kbuild.BUILD_ERRORS,
        )
    except StepFailed as e:
        raise StepFailed(kbuild._repo_paths(str(e))) from None
    run_logged("installing the arm64 uapi headers", [*_make(tree, obj), "headers"], log_path("arm64-headers"))
    stage(f"arm64 kernel ready: {show(image)}" + (" (unchanged)" if before == image.stat().st_mtime else ""))
    return image


def check_static_aarch64(path: Path) -> None:
    """Fail unless @path is a static 64-bit little-endian arm64 ELF program.

    The guest has no dynamic loader or libraries, so a dynamically linked
    program would fail there with a bare ENOENT.
    """
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise StepFailed(f"{show(path)} is not a 64-bit little-endian ELF file")
    machine = int.from_bytes(data[18:20], "little")
    if machine != EM_AARCH64:
        raise StepFailed(f"{show(path)} is for ELF machine {machine}, not arm64")
    phoff = int.from_bytes(data[32:40], "little")
    phentsize = int.from_bytes(data[54:56], "little")
    phnum = int.from_bytes(data[56:58], "little")
    for i in range(phnum):
        off = phoff + i * phentsize
        if int.from_bytes(data[off : off + 4], "little") == PT_INTERP:
            raise StepFailed(f"{show(path)} is dynamically linked")


def build_arm64_selftests(tree: Path, obj: Path, out: Path) -> list[Path]:
    """Cross-compile the touched_sweep kselftests, static, into @out.

    They compile against the uapi headers build_arm64() installed in
    obj/usr/include, which have touched_sweep.h and arm64's syscall numbers.
    """
    stage("cross-compiling the touched_sweep kselftests for arm64")
    headers = obj / "usr" / "include"
    if not (headers / "linux" / "touched_sweep.h").exists():
        raise StepFailed(f"{headers} has no linux/touched_sweep.h: build the arm64 kernel first")
    out.mkdir(parents=True, exist_ok=True)
    make = [
        "make",
        "-C",
        str(tree / kbuild.SELFTEST_DIR),
        f"OUTPUT={out}",
        "ARCH=arm64",
        f"CROSS_COMPILE={CROSS_COMPILE}",
        f"CC={CROSS_COMPILE}gcc",
        "LDFLAGS=-static",
        f"KHDR_INCLUDES=-isystem {headers}",
    ]
    # The selftest Makefile does not know that the programs depend on the
    # installed ABI header: rebuild them all when it or the command changes.
    key = kbuild._sha((headers / "linux" / "touched_sweep.h").read_bytes() + " ".join(make).encode())
    stamp = out / ".harness-headers"
    if not stamp.exists() or stamp.read_text() != key:
        make.append("-B")
    run_logged("arm64 selftest build", make, log_path("arm64-selftests"), excerpt=kbuild.BUILD_ERRORS)
    stamp.write_text(key)
    programs = [out / name for name in SELFTESTS]
    for program in programs:
        if not program.exists():
            raise StepFailed(f"the selftest build made no {show(program)}")
        check_static_aarch64(program)
    return programs


def build_init(out: Path) -> Path:
    """Cross-compile the guest's init, static; it is small, so always."""
    out.mkdir(parents=True, exist_ok=True)
    init = out / "init"
    run_logged(
        "arm64 init build",
        [f"{CROSS_COMPILE}gcc", "-static", "-O2", "-Wall", "-Wextra", "-o", init, INIT_SOURCE],
        log_path("arm64-init"),
        excerpt=kbuild.BUILD_ERRORS,
    )
    check_static_aarch64(init)
    return init


def _cpio_entry(name: str, mode: int, ino: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> bytes:
    """One member of a cpio archive in the "newc" format the kernel reads.

    Owner root and mtime 0, whoever builds it, so the archive depends
    only on its contents.
    """
    namez = name.encode() + b"\0"
    nlink = 2 if mode & 0o170000 == 0o040000 else 1
    fields = [ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(namez), 0]
    header = b"070701" + b"".join(b"%08x" % v for v in fields)
    entry = header + namez
    entry += b"\0" * (-len(entry) % 4)
    return entry + data + b"\0" * (-len(data) % 4)


def build_initramfs(init: Path, programs: list[Path], dest: Path) -> Path:
    """Write an uncompressed initramfs: /init, /bin/sleep and /selftests.

    Written in Python rather than with cpio(1) so that /dev/console, which
    the kernel opens for init before devtmpfs is mounted, can be a device
    node without root privileges on the host.
    """
    dirs = {"bin": 0o755, "dev": 0o755, "proc": 0o555, "sys": 0o555, "tmp": 0o1777, "selftests": 0o755}
    members: list[tuple[str, int, bytes, tuple[int, int]]] = [(d, 0o040000 | perm, b"", (0, 0)) for d, perm in dirs.items()]
    members.append(("dev/console", 0o020000 | 0o600, b"", (5, 1)))
    members.append(("init", 0o100000 | 0o755, init.read_bytes(), (0, 0)))
    # The init sleeps when run as "sleep": a core test executes /bin/sleep.
    members.append(("bin/sleep", 0o120000 | 0o777, b"/init", (0, 0)))
    members += [(f"selftests/{p.name}", 0o100000 | 0o755, p.read_bytes(), (0, 0)) for p in programs]
    archive = b"".join(_cpio_entry(name, mode, ino, data, rdev) for ino, (name, mode, data, rdev) in enumerate(members, start=1))
    archive += _cpio_entry("TRAILER!!!", 0, 0)
    archive += b"\0" * (-len(archive) % 512)
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(archive)
    tmp.replace(dest)
    stage(f"initramfs: {show(dest)} ({len(archive) >> 10} KiB, {len(programs)} selftests)")
    return dest


def build_all(tree: Path, obj: Path, out: Path, extra_fragments: Sequence[Path] = ()) -> tuple[Path, Path]:
    """The kernel, the selftests and the initramfs: (Image, initramfs)."""
    image = build_arm64(tree, obj, extra_fragments)
    programs = build_arm64_selftests(tree, obj, out / "selftests")
    initramfs = build_initramfs(build_init(out), programs, out / "initramfs.cpio")
    return image, initramfs


def qemu_argv(
    image: Path,
    initramfs: Path,
    append: str,
    *,
    cpu: str = DEFAULT_CPU,
    cpus: int = DEFAULT_CPUS,
    memory_mib: int = DEFAULT_MEMORY_MIB,
) -> list[str]:
    """The QEMU command line for one boot.

    The memory is split over two NUMA nodes described in the device tree,
    for the migration and NUMA-balancing tests.  Every vCPU is on node 0
    and node 1 has memory only, as with the x86 guests' numa=fake=2: the
    NUMA-hinting test puts its pages on node 1 and waits for the balancer
    to pull them to the reading CPU's node, which cannot happen while the
    reader runs on node 1, and then skips.  With a vCPU on each node it
    skipped in about half the boots.
    """
    qemu = shutil.which(QEMU)
    if not qemu:
        raise StepFailed(f"{QEMU} not found (tools/testing/harness/install-deps --patches installs qemu-system-arm)")
    if memory_mib % 2:
        raise StepFailed("the arm64 guest needs an even number of MiB of memory, one half for each NUMA node")
    numa = []
    for node in (0, 1):
        numa += [
            "-object",
            f"memory-backend-ram,id=mem{node},size={memory_mib // 2}M",
            "-numa",
            f"node,nodeid={node},memdev=mem{node}" + (f",cpus=0-{cpus - 1}" if node == 0 else ""),
        ]
    return [
        qemu,
        "-M",
        "virt,gic-version=3",
        "-cpu",
        cpu,
        "-accel",
        "tcg,thread=multi",
        "-smp",
        str(cpus),
        "-m",
        f"{memory_mib}M",
        *numa,
        "-nographic",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        "stdio",
        "-kernel",
        str(image),
        "-initrd",
        str(initramfs),
        "-append",
        append,
    ]


def split_console(console: str, results: Path) -> tuple[list[TestResult], bool]:
    """Per-selftest results from the console: TAP files in @results, counts.

    Returns the results of every expected selftest (one that never started
    counts as failed) and whether the init reached its final marker.
    """
    results.mkdir(parents=True, exist_ok=True)
    for stale in results.glob("*.tap"):
        stale.unlink()
    begins = {m[1]: m.end() for m in BEGIN_RE.finditer(console)}
    ends = {m[1]: m for m in END_RE.finditer(console)}
    out = []
    for name in SELFTESTS:
        tap = results / f"{name}.tap"
        if name not in begins:
            out.append(TestResult(name, "did not run", 0.0, suite.Counts(name, note="did not run")))
            continue
        end = ends.get(name)
        stop = end.start() if end else len(console)
        tap.write_text(console[begins[name] : stop].lstrip("\n"))
        status, seconds = (end[2], float(end[3])) if end else ("unfinished", 0.0)
        out.append(TestResult(name, status, seconds, suite.tap_counts(name, tap)))
    return out, DONE_RE.search(console) is not None


def boot_arm64(
    image: Path,
    initramfs: Path,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    test_timeout: int = DEFAULT_TEST_TIMEOUT,
    cpu: str = DEFAULT_CPU,
    cpus: int = DEFAULT_CPUS,
    memory_mib: int = DEFAULT_MEMORY_MIB,
    cmdline: str = "",
    stream: bool = True,
    results: Path = OUT / "results",
) -> BootResult:
    """Boot @image with @initramfs, let its init run the selftests, collect.

    QEMU is killed after @timeout seconds; the init gives each selftest
    @test_timeout seconds.  The console goes to build/logs/arm64-console.log
    (and to stdout if @stream), the TAP of each selftest to @results.
    """
    append = " ".join(
        [
            "console=ttyAMA0",
            "panic=-1",
            "loglevel=6",
            # Parameters without a dot that the kernel does not know end up in
            # init's environment.
            f"harness_timeout={test_timeout}",
            f"TOUCHED_SWEEP_STRESS_WRITES={STRESS_WRITES}",
            cmdline,
        ]
    ).strip()
    argv = qemu_argv(image, initramfs, append, cpu=cpu, cpus=cpus, memory_mib=memory_mib)
    console_log = log_path(CONSOLE_LOG_NAME)
    stage(
        f"booting {show(image)} (TCG, -cpu {cpu}, {cpus} vCPUs, "
        f"{memory_mib} MiB, timeout {timeout:.0f}s; console: {show(console_log)})"
    )
    follower = vm._Follower(console_log) if stream else None
    began = time.monotonic()
    with open(console_log, "wb") as console:
        console.write(f"$ {shlex.join(argv)}\n".encode())
        console.flush()
        if follower:
            follower.start()
        proc = subprocess.Popen(argv, stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            timed_out = vm.wait_or_kill(proc, timeout)
        finally:
            if follower:
                follower.done.set()
                follower.join()
    seconds = time.monotonic() - began
    # The serial console ends lines with CRLF.
    text = console_log.read_text(errors="replace").replace("\r\n", "\n")
    tests, finished = split_console(text, results)
    return BootResult(
        tests=tests,
        splats=vm.find_splats(text),
        console_log=console_log,
        timed_out=timed_out,
        finished=finished,
        times={"boot+tests": seconds},
    )


def report(result: BootResult) -> None:
    """Print the summary: times, per-selftest counts, splats, verdict."""
    for excerpt in result.splats:
        print(f"---- kernel problem on the guest console ----\n{excerpt}\n---- end of excerpt ----", flush=True)
    print("arm64 summary:")
    for what, secs in result.times.items():
        print(f"  {what:<12} {secs:7.1f} s")
    test_secs = sum(t.seconds for t in result.tests)
    if "boot+tests" in result.times and result.finished:
        print(f"  {'of which':<12} {result.times['boot+tests'] - test_secs:7.1f} s boot and power-off, {test_secs:.1f} s selftests")
    for t in result.tests:
        c = t.counts
        print(
            f"  {t.name:<26} {t.status:<12} pass {c.passed:3} fail {c.failed:3} "
            f"skip {c.skipped:3}  {t.seconds:6.1f} s" + (f"  ({c.note})" if c.note else "")
        )
    print(f"  kernel splats: {len(result.splats) or 'none'}; console: {show(result.console_log)}")
    problems = result.problems()
    print("  result: " + ("ok" if not problems else "FAILED: " + "; ".join(problems)), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="arm64.py",
        description="Cross-build the patched kernel and the touched_sweep "
        "kselftests for arm64, boot the kernel in "
        "qemu-system-aarch64 (TCG) from an initramfs and run the "
        "selftests in it.  Exits non-zero on a build error, a "
        "failed or skipped selftest, a kernel splat or a timeout.  "
        "Logs: build/logs/arm64-*.log; the console: "
        "build/logs/arm64-console.log.",
    )
    parser.add_argument("--no-boot", action="store_true", help="build the kernel, the selftests and the initramfs, but do not boot")
    parser.add_argument(
        "--tree",
        type=Path,
        help="kernel source tree, used as it is (default: build/linux, first brought up to date with the repository)",
    )
    parser.add_argument("--obj", type=Path, default=OBJ, help=f"kernel build directory (default: {show(OBJ)})")
    parser.add_argument(
        "--fragment",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="another config fragment, merged last (repeatable); "
        "an option it turns off must say so (CONFIG_X=n), "
        "or the check that requested options stuck fails; "
        "use it with its own --obj",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=OUT,
        help=f"directory for the init, the selftests, the initramfs and the TAP results (default: {show(OUT)})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="wall-clock limit for the whole boot, in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--test-timeout",
        type=int,
        default=DEFAULT_TEST_TIMEOUT,
        help="limit for each selftest program, in seconds (default: %(default)s)",
    )
    parser.add_argument("--cpu", default=DEFAULT_CPU, help="QEMU -cpu model (default: %(default)s)")
    parser.add_argument("--cpus", type=int, default=DEFAULT_CPUS, help="vCPUs, all on NUMA node 0 (default: %(default)s)")
    parser.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MIB, help="guest memory in MiB (default: %(default)s)")
    parser.add_argument("--cmdline", default="", help="extra kernel command-line parameters")
    parser.add_argument("--quiet", action="store_true", help="do not copy the guest console to stdout")
    args = parser.parse_args(argv)

    obj: Path = args.obj.resolve()
    out: Path = args.out.resolve()
    began = time.monotonic()
    try:
        if args.tree is None:
            kbuild.extract()
            kbuild.sync_tree()
            tree = kbuild.TREE
        else:
            tree = args.tree.resolve()
        # merge_config.sh runs in the tree: relative paths would not do.
        image, initramfs = build_all(tree, obj, out, [f.resolve() for f in args.fragment])
    except StepFailed as e:
        print(f"arm64: {e}", file=sys.stderr, flush=True)
        return 1
    build_secs = time.monotonic() - began
    stage(f"arm64 build took {build_secs:.1f}s")
    if args.no_boot:
        return 0
    try:
        result = boot_arm64(
            image,
            initramfs,
            args.timeout,
            test_timeout=args.test_timeout,
            cpu=args.cpu,
            cpus=args.cpus,
            memory_mib=args.memory,
            cmdline=args.cmdline,
            stream=not args.quiet,
            results=out / "results",
        )
    except StepFailed as e:
        print(f"arm64: {e}", file=sys.stderr, flush=True)
        return 1
    result.times = {"build": build_secs, **result.times}
    report(result)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
