"""Paths, stage reporting and logged command execution shared by harness."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parents[3]
BUILD = REPO / "build"
LOGS = BUILD / "logs"

_start = time.monotonic()


class StepFailed(Exception):
    """A build or test step failed; the message names it and its log."""


def stage(message: str) -> None:
    """Print one progress line with the time elapsed since harness started."""
    print(f"[{time.monotonic() - _start:7.1f}s] {message}", flush=True)


def show(path: Path) -> str:
    """@path relative to the repository when it is inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def log_path(name: str) -> Path:
    LOGS.mkdir(parents=True, exist_ok=True)
    return LOGS / f"{name}.log"


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def run_logged(
    step: str,
    argv: Sequence[str | os.PathLike[str]],
    log: Path,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    append: bool = False,
    excerpt: str | None = None,
) -> None:
    """Run @argv with all output going to @log; raise StepFailed on error.

    On failure the exception carries the step name, the log path and the
    lines of the log that explain the failure: those matching the regular
    expression @excerpt if any, otherwise the log's tail.
    """
    args = [str(a) for a in argv]
    with open(log, "a" if append else "w") as out:
        out.write(f"$ {shlex.join(args)}\n")
        out.flush()
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        rc = subprocess.call(args, cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if rc != 0:
        why = ""
        if excerpt:
            pattern = re.compile(excerpt)
            hits = [ln for ln in log.read_text(errors="replace").splitlines() if pattern.search(ln)]
            why = "\n".join(hits[:20])
        if not why:
            why = tail(log)
        raise StepFailed(f"{step} failed (exit {rc}); full log: {log}\n{why}")


def fail(message: str) -> NoReturn:
    print(f"harness: {message}", file=sys.stderr, flush=True)
    sys.exit(1)
