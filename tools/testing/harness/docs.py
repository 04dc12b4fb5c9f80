"""Check the documentation: kernel-doc comments and the Sphinx build.

Both checks run on a kernel tree that kbuild.sync_tree() brought up to date
with the repository, and return the warnings they found rather than fail on
them, so that a caller can decide which ones matter.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from common import StepFailed, log_path, run_logged

# What the project's warnings have to mention to be its own.
FEATURE = "touched_sweep"

# A kernel-doc message starts with the file and line it is about; lines
# without that prefix continue the message before them.
_KERNEL_DOC_MESSAGE = re.compile(r"^\S+:\d+: ")

# Sphinx and docutils report problems as WARNING, ERROR or SEVERE (plus
# CRITICAL from Sphinx itself); kernel-doc, which Sphinx runs for the
# kernel-doc directive, as "warning:".
_SPHINX_PROBLEM = re.compile(r"\b(?:WARNING|ERROR|SEVERE|CRITICAL)\b|\bwarning:")


def kernel_doc_warnings(tree: Path, files: list[str]) -> list[str]:
    """Run ``scripts/kernel-doc -none -Wall`` on @files of @tree.

    @files are relative to @tree, and so are the file names in the
    messages.  Returns one string per message (a message that spans
    several lines is joined into one); an empty list means the comments
    are clean.  Raises StepFailed if a file is missing or kernel-doc
    cannot run.
    """
    if not files:
        return []
    tree = tree.resolve()
    missing = [f for f in files if not (tree / f).is_file()]
    if missing:
        raise StepFailed(f"kernel-doc: no such file in {tree}: {', '.join(missing)}")
    argv = [str(tree / "scripts" / "kernel-doc"), "-none", "-Wall", *files]
    try:
        proc = subprocess.run(argv, cwd=tree, capture_output=True, text=True, errors="replace", check=False)
    except OSError as e:
        raise StepFailed(f"kernel-doc could not run: {e}") from e
    if proc.returncode != 0:
        raise StepFailed(f"kernel-doc failed (exit {proc.returncode}):\n{proc.stderr.strip()}")

    messages: list[str] = []
    for line in proc.stderr.splitlines():
        if not line.strip():
            continue
        if messages and not _KERNEL_DOC_MESSAGE.match(line):
            messages[-1] = f"{messages[-1]} {line.strip()}"
        else:
            messages.append(line.rstrip())
    return messages


def build_htmldocs(tree: Path, out: Path, dirs: list[str]) -> list[str]:
    """Build the HTML documentation of @dirs (SPHINXDIRS) into @out.

    Runs ``make htmldocs`` on @tree with ``O=@out``, logging everything to
    build/logs/htmldocs.log.  Returns the lines of warnings and errors that
    mention touched_sweep; those of the rest of the kernel are left in the
    log.  Raises StepFailed if the build fails.
    """
    if not dirs:
        raise StepFailed("htmldocs: no SPHINXDIRS given")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = log_path("htmldocs")
    run_logged(
        f"htmldocs ({' '.join(dirs)})",
        ["make", "-C", tree, f"O={out}", f"SPHINXDIRS={' '.join(dirs)}", "htmldocs"],
        log,
        excerpt=r"[Ee]rror|ERROR|SEVERE|CRITICAL",
    )
    return [
        line.rstrip()
        for line in log.read_text(errors="replace").splitlines()
        if not line.startswith("$ ")  # the command run_logged wrote
        and FEATURE in line
        and _SPHINX_PROBLEM.search(line)
    ]
