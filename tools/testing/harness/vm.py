"""Boot a kernel in QEMU, run one command in the guest, collect the result.

The guest's root file system is the host's, read-only over virtio-9p, so
the guest runs the host's shell, Python and test binaries directly.  A
second, writable 9p share carries the command in and its output, exit
status and result files back.  The serial console goes to a log that is
scanned for kernel splats: any of them fails the run.
"""

from __future__ import annotations

import argparse
import fcntl
import itertools
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from common import BUILD, LOGS, REPO, StepFailed, show, stage

GUEST_INIT = REPO / "tools" / "testing" / "harness" / "guest-init"
VM_DIR = BUILD / "vm"
KVM_PROBE_CACHE = BUILD / "kvm-probe.json"
GUEST_OUT = "/tmp/harness-out"

# Console lines that mean the kernel found a bug.  Lockdep, KASAN and
# DEBUG_ATOMIC_SLEEP reports all start with one of the first two.
SPLAT_PATTERNS = [
    r"\bBUG:",
    r"\bWARNING:",
    r"\bOops\b",
    r"kernel BUG at",
    r"Kernel panic",
    r"general protection fault",
    r"\bUBSAN:",
    r"INFO: .*(lock|held|task .* blocked)",
    r"rcu: .*(detected stall|self-detected stall)",
    r"RCU stall",
    # CONFIG_DEBUG_TOUCHED_SWEEP: a write the tracking did not mark.
    r"touched_sweep check:",
]
SPLAT_RE = re.compile("|".join(SPLAT_PATTERNS))


@dataclass
class RunOptions:
    timeout: float = 1800.0
    accel: str = "auto"
    memory: str = "2G"
    cpus: int = 2
    cmdline: str = ""
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class RunResult:
    exit_code: int
    command_status: int | None
    output: str
    console_log: Path
    out_dir: Path
    splats: list[str]
    timed_out: bool
    accel: str
    seconds: float


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--timeout",
        type=float,
        default=RunOptions.timeout,
        help="wall-clock limit for the whole boot, in seconds; QEMU is killed when it runs out (default: %(default)s)",
    )
    p.add_argument(
        "--accel",
        choices=["auto", "tcg", "kvm"],
        default="auto",
        help="auto uses KVM only if a probe shows it works, else TCG (default: auto)",
    )
    p.add_argument("--memory", default=RunOptions.memory, help="guest memory (default: %(default)s)")
    p.add_argument("--cpus", type=int, default=RunOptions.cpus, help="guest vCPUs (default: %(default)s)")
    p.add_argument("--cmdline", default="", help="extra kernel command-line parameters")


def options_from_args(args: argparse.Namespace) -> RunOptions:
    return RunOptions(timeout=args.timeout, accel=args.accel, memory=args.memory, cpus=args.cpus, cmdline=args.cmdline)


def _qemu() -> str:
    path = shutil.which("qemu-system-x86_64")
    if not path:
        raise StepFailed("qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
    return path


def _base_argv(image: Path, accel: str, memory: str, cpus: int, append: str) -> list[str]:
    if accel == "kvm":
        accel_args = ["-accel", "kvm", "-cpu", "host"]
    else:
        accel_args = ["-accel", "tcg,thread=multi", "-cpu", "max"]
    return [
        _qemu(),
        *accel_args,
        "-m",
        memory,
        "-smp",
        str(cpus),
        "-nographic",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        "stdio",
        "-kernel",
        str(image),
        "-append",
        append,
    ]


def kvm_usable(image: Path | None = None, force: bool = False) -> tuple[bool, str]:
    """Whether KVM really boots a guest here; the answer is cached.

    /dev/kvm existing is not enough: under some hypervisors QEMU aborts
    setting MSRs or hangs during boot.  The probe boots @image without a
    root file system and waits for the kernel to get as far as mounting
    root.
    """
    ident = f"{platform.release()} {_qemu()}"
    if not force and KVM_PROBE_CACHE.exists():
        cached = json.loads(KVM_PROBE_CACHE.read_text())
        if cached.get("ident") == ident:
            return cached["usable"], cached["why"]
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        usable, why = False, "/dev/kvm is missing or not accessible"
    elif image is None or not image.exists():
        return False, "no kernel image to probe with yet"
    else:
        argv = _base_argv(image, "kvm", "256M", 1, "console=ttyS0 panic=-1 root=/dev/nonexistent")
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, errors="replace")
            text = proc.stdout + proc.stderr
            if "VFS: Unable to mount root" in text or "Kernel panic" in text:
                usable, why = True, "a probe guest booted under KVM"
            else:
                last = (text.strip().splitlines() or ["no output"])[-1]
                usable, why = False, f"probe guest failed: {last}"
        except subprocess.TimeoutExpired:
            usable, why = False, "probe guest hung under KVM"
    BUILD.mkdir(parents=True, exist_ok=True)
    KVM_PROBE_CACHE.write_text(json.dumps({"ident": ident, "usable": usable, "why": why}))
    return usable, why


def _python_bin_dir() -> str:
    """Directory of the real interpreter (not a pyenv shim) for the guest."""
    return str(Path(os.path.realpath(sys.executable)).parent)


def _write_command(out_dir: Path, cmd: list[str], env: dict[str, str]) -> None:
    guest_env = {
        "PATH": f"{_python_bin_dir()}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(REPO),
        "HARNESS_OUT": GUEST_OUT,
        "PYSWEEP_GUEST": "1",
        **env,
    }
    lines = ["# Written by harness for one guest run."]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in guest_env.items()]
    lines += [f"cd {shlex.quote(str(REPO))}", shlex.join(cmd), ""]
    (out_dir / "cmd.sh").write_text("\n".join(lines))


def find_splats(console: str, context: int = 40) -> list[str]:
    """Excerpts of @console around each kernel splat, merged if they overlap."""
    lines = console.splitlines()
    excerpts: list[str] = []
    last_end = -1
    for i, line in enumerate(lines):
        if i <= last_end or not SPLAT_RE.search(line):
            continue
        start = max(0, i - 3)
        last_end = min(len(lines), i + context)
        excerpts.append("\n".join(lines[start:last_end]))
    return excerpts


class _Follower(threading.Thread):
    """Copies the guest command's output file to stdout as it grows."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.done = threading.Event()

    def run(self) -> None:
        pos = 0
        while True:
            finished = self.done.is_set()
            try:
                with open(self.path, "rb") as f:
                    f.seek(pos)
                    chunk = f.read()
            except FileNotFoundError:
                chunk = b""
            if chunk:
                pos += len(chunk)
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
            if finished:
                return
            self.done.wait(0.5)


def _claim_run_dir(name: str = "") -> tuple[Path, Path, IO[bytes]]:
    """A fresh output directory and console log for one guest run.

    The first run takes build/vm/out and build/logs/guest-console.log, or
    build/vm/out-NAME and build/logs/guest-console-NAME.log for a named
    run, which a later boot of the same suite then leaves alone; runs
    started while it boots take numbered ones, so that several guests can
    run side by side.  The returned file holds the claim (an flock) until
    it is closed.
    """
    base = f"-{name}" if name else ""
    LOGS.mkdir(parents=True, exist_ok=True)
    VM_DIR.mkdir(parents=True, exist_ok=True)
    for n in itertools.count():
        suffix = base if n == 0 else f"{base}-{n}"
        lock = open(VM_DIR / f"lock{suffix}", "wb")  # noqa: SIM115 - held by the caller
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        out_dir = VM_DIR / f"out{suffix}"
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir()
        return out_dir, LOGS / f"guest-console{suffix}.log", lock
    raise AssertionError("unreachable")


def wait_or_kill(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for @proc, a session leader; kill its group at @timeout.

    The group is killed too if the wait is interrupted (^C), so no QEMU is
    left behind.  Return whether @timeout expired.
    """
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return False


def run(image: Path, cmd: list[str], opts: RunOptions | None = None, *, stream: bool = False, name: str = "") -> RunResult:
    """Boot @image, run @cmd in the guest and return what happened.

    @name, if given, names the run's output directory and console log.
    """
    opts = opts or RunOptions()
    accel = opts.accel
    if accel == "auto":
        usable, why = kvm_usable(image)
        accel = "kvm" if usable else "tcg"
        stage(f"accelerator: {accel} ({why})")
    out_dir, console_log, lock = _claim_run_dir(name)
    _write_command(out_dir, cmd, opts.env)

    append = " ".join(
        [
            "console=ttyS0",
            "panic=-1",
            "loglevel=6",
            # Under TCG the clocksource watchdog, driven by emulated timer
            # interrupts that lag under load, would mark the TSC unstable.
            "tsc=reliable",
            # ACPI interrupt-link setup stalls the boot for seconds per
            # virtio device under TCG; PCI interrupt routing works without it.
            "acpi=noirq",
            "root=/dev/root",
            "rootfstype=9p",
            "ro",
            "rootflags=trans=virtio,version=9p2000.L,msize=262144,cache=loose",
            f"init={GUEST_INIT}",
            opts.cmdline,
        ]
    ).strip()
    argv = [
        *_base_argv(image, accel, opts.memory, opts.cpus, append),
        "-fsdev",
        "local,id=root,path=/,readonly=on,security_model=none,multidevs=remap",
        "-device",
        "virtio-9p-pci,fsdev=root,mount_tag=/dev/root",
        "-fsdev",
        f"local,id=out,path={out_dir},security_model=none",
        "-device",
        "virtio-9p-pci,fsdev=out,mount_tag=out",
    ]
    stage(f"booting {show(image)} ({accel}, {opts.cpus} vCPUs, {opts.memory}, timeout {opts.timeout:.0f}s; console: {console_log})")
    follower = _Follower(out_dir / "output") if stream else None
    if follower:
        follower.start()
    began = time.monotonic()
    with open(console_log, "wb") as console:
        console.write(f"$ {shlex.join(argv)}\n".encode())
        console.flush()
        proc = subprocess.Popen(argv, stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        timed_out = wait_or_kill(proc, opts.timeout)
    seconds = time.monotonic() - began
    lock.close()  # the run directory may be reused from here on
    if follower:
        follower.done.set()
        follower.join()

    status_file = out_dir / "status"
    status = int(status_file.read_text().strip()) if status_file.exists() else None
    output = (out_dir / "output").read_text(errors="replace") if (out_dir / "output").exists() else ""
    splats = find_splats(console_log.read_text(errors="replace"))
    if status is None or timed_out:
        exit_code = 124 if timed_out else 1
    elif splats:
        exit_code = 1
    else:
        exit_code = status
    return RunResult(
        exit_code=exit_code,
        command_status=status,
        output=output,
        console_log=console_log,
        out_dir=out_dir,
        splats=splats,
        timed_out=timed_out,
        accel=accel,
        seconds=seconds,
    )


def report(result: RunResult) -> None:
    """Say how the guest run ended, with console excerpts for splats."""
    for excerpt in result.splats:
        print(f"---- kernel problem on the guest console ----\n{excerpt}\n---- end of excerpt ----", flush=True)
    if result.timed_out:
        stage(f"guest timed out after {result.seconds:.0f}s and was killed; console: {result.console_log}")
    elif result.command_status is None:
        stage(f"guest ended without the command finishing; console: {result.console_log}")
        print("\n".join(result.console_log.read_text(errors="replace").splitlines()[-30:]))
    else:
        verdict = "kernel problems found on the console" if result.splats else "console clean"
        stage(f"guest run took {result.seconds:.0f}s; command exited {result.command_status}; {verdict}")
