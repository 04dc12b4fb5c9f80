"""A process to dump: memory that it keeps writing, and mappings that come and go.

``python3 -m pysweep.workload --size MIB --rate W`` maps ``MIB`` MiB of
private anonymous memory, fills it, prints ``ready`` and then writes ``W``
random pages a second (a unique 8-byte value each), mapping or unmapping a
small extra mapping every ``--churn`` writes, until it is killed.
:func:`start` runs it as a child and waits until it is ready.
"""

from __future__ import annotations

import argparse
import mmap
import random
import subprocess
import sys
import time
from collections.abc import Sequence

__all__ = ["main", "start"]

PAGE = mmap.PAGESIZE


def run(size_mib: int, rate: int, churn: int, seed: int = 1) -> None:
    size = size_mib << 20
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for off in range(0, size, PAGE):
        memory[off] = 1
    print("ready", flush=True)
    rng = random.Random(seed)
    extra: mmap.mmap | None = None
    n = 0
    start = time.monotonic()
    while True:
        # Bursts of a hundredth of a second keep the rate steady.
        for _ in range(max(1, rate // 100)):
            off = rng.randrange(size // PAGE) * PAGE + rng.randrange(PAGE // 8) * 8
            memory[off : off + 8] = n.to_bytes(8, "little")
            n += 1
            if churn and n % churn == 0:
                if extra is None:
                    extra = mmap.mmap(-1, 16 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
                    extra[0:8] = n.to_bytes(8, "little")
                else:
                    extra.close()
                    extra = None
        ahead = n / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)


def start(size_mib: int, rate: int, churn: int = 500) -> subprocess.Popen[str]:
    """Start the workload as a child process; return once it is ready."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pysweep.workload", "--size", str(size_mib), "--rate", str(rate), "--churn", str(churn)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError("the workload did not start")
    return proc


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m pysweep.workload", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64, metavar="MIB", help="memory to write, in MiB (default: 64)")
    parser.add_argument("--rate", type=int, default=1000, metavar="W", help="pages written per second (default: 1000)")
    parser.add_argument(
        "--churn", type=int, default=500, metavar="N", help="map or unmap a small mapping every N writes; 0: never (default: 500)"
    )
    args = parser.parse_args(argv)
    if args.size < 1 or args.rate < 1 or args.churn < 0:
        parser.error("--size and --rate must be positive, --churn not negative")
    run(args.size, args.rate, args.churn)


if __name__ == "__main__":
    main()
