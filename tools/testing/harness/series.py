"""The kernel change in upstream form: `make patches`, `make check-patches`.

The repository keeps the change in two parts: kernel/patches/, a series of
patches to files that exist in Linux 6.12, and the files new to the kernel
(kernel/mm/, include/, Documentation/, tools/testing/selftests/touched_sweep/),
which harness copies into the tree.  The series posted upstream carries both.
kernel/patches/new-files names the patch that adds each new file, which
enters with its content at that point of the series: the repository's copy
less what later patches change in it, recorded as
kernel/patches/stages/<patch>.diff.

`make patches` rebuilds that history in a git repository of the files the
series touches (build/upstream/git), writes `git format-patch` output with a
cover letter into build/patches/, and runs checkpatch.pl --strict on it.
`make check-patches` then applies the series one patch at a time to a fresh
6.12 tree, builds the kernel after each, builds the selftests and checks the
documentation where the series adds them, and cross-builds arm64.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import docs
import kbuild
from common import BUILD, REPO, StepFailed, log_path, run_logged, show, stage

PATCHES = kbuild.PATCHES
NEW_FILES = PATCHES / "new-files"
STAGES = PATCHES / "stages"
COVER_LETTER = PATCHES / "cover-letter.txt"
CHECK_REASONS = PATCHES / "checkpatch-checks"
OUT = BUILD / "patches"
WORK = BUILD / "upstream"
# What check-patches found last, for the cover letter of later runs.
CHECK_RESULTS = WORK / "check-results.json"

# checkpatch.pl --strict --show-types: "CHECK:TYPE: message" then, for a
# finding in a file, "#N: FILE: path:line:".
FINDING = re.compile(r"^(ERROR|WARNING|CHECK):([A-Z0-9_]+): (.*)$")
FINDING_FILE = re.compile(r"^#\d+: FILE: ([^:]+):(\d+):")
# Compiler warnings in a kernel or selftest build log.
COMPILER_WARNING = re.compile(r": warning: ")


@dataclass(frozen=True)
class SeriesPatch:
    """One patch of kernel/patches and the new files it adds."""

    path: Path
    new_files: tuple[str, ...]
    stage: Path | None

    @property
    def name(self) -> str:
        return self.path.name


def _number(patch: Path) -> str:
    return patch.name.split("-", 1)[0]


def plan() -> list[SeriesPatch]:
    """The series with each new file assigned to the patch that adds it."""
    series = kbuild.series_patches()
    by_number = {_number(p): p for p in series}
    new = sorted(kbuild.overlay_content())
    added: dict[str, list[str]] = {p.name: [] for p in series}
    owner: dict[str, str] = {}
    for lineno, line in enumerate(NEW_FILES.read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{show(NEW_FILES)}:{lineno}"
        patch = by_number.get(words[0])
        if patch is None:
            raise StepFailed(f"{where}: no patch numbered {words[0]} in the series")
        for entry in words[1:]:
            matched = [rel for rel in new if rel == entry or (entry.endswith("/") and rel.startswith(entry))]
            if not matched:
                raise StepFailed(f"{where}: {entry} is not a file the repository adds to the kernel")
            for rel in matched:
                if rel in owner:
                    raise StepFailed(f"{where}: {rel} is already added by {owner[rel]}")
                owner[rel] = patch.name
                added[patch.name].append(rel)
    unassigned = [rel for rel in new if rel not in owner]
    if unassigned:
        raise StepFailed(f"{show(NEW_FILES)} does not say which patch adds {', '.join(unassigned)}")
    stems = {p.stem for p in series}
    for diff in sorted(STAGES.glob("*.diff")) if STAGES.is_dir() else []:
        if diff.stem not in stems:
            raise StepFailed(f"{show(diff)} belongs to no patch of the series")
    diffs = {p.name: STAGES / f"{p.stem}.diff" for p in series}
    return [SeriesPatch(p, tuple(added[p.name]), diffs[p.name] if diffs[p.name].exists() else None) for p in series]


def staged_content(patches: list[SeriesPatch]) -> list[dict[str, bytes]]:
    """For each patch, the new files as they stand once it is applied."""
    final = kbuild.overlay_content()
    after: list[dict[str, bytes]] = [{} for _ in patches]
    log = log_path("stages")
    log.write_text("")
    with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
        root = Path(tmp)
        for rel, data in final.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        for i in reversed(range(len(patches))):
            present = {rel for p in patches[: i + 1] for rel in p.new_files}
            after[i] = {rel: (root / rel).read_bytes() for rel in present}
            diff = patches[i].stage
            if diff is None:
                continue
            earlier = present - set(patches[i].new_files)
            for rel in kbuild.patch_files(diff):
                if rel not in earlier:
                    raise StepFailed(f"{show(diff)} changes {rel}, which no patch before {patches[i].name} adds")
            try:
                run_logged(
                    f"undoing {diff.name}",
                    ["patch", "-R", "-p1", "--batch", "--fuzz=0", "--no-backup-if-mismatch", "-r", "-", "-d", root, "-i", diff],
                    log,
                    append=True,
                )
            except StepFailed as e:
                raise StepFailed(
                    f"{show(diff)} no longer applies to the new "
                    "files: edit the earlier version of the files it "
                    "changes and regenerate it (kernel/patches/README)"
                    f"\n{e}"
                ) from None
    return after


def _identity(patch: Path) -> dict[str, str]:
    """Author and committer of the history: the From: of @patch."""
    for line in patch.read_text(errors="replace").splitlines():
        m = re.match(r"From: (.*?) <(.*)>$", line)
        if m:
            name, email = m.groups()
            return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
    raise StepFailed(f"{patch.name} has no From: line")


def _tarball_top() -> str:
    """The top directory of the kernel source tarball."""
    with subprocess.Popen(["tar", "-tJf", kbuild.SOURCE_TARBALL], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        proc.kill()
    return first.split("/", 1)[0]


def pristine_files(paths: list[str]) -> Path:
    """A directory holding @paths as the 6.12 source tarball has them."""
    saved = WORK / "pristine"
    stamp = saved / ".harness-source"
    wanted = "".join(f"{p}\n" for p in sorted(paths))
    ident = kbuild._tarball_identity() + wanted
    if stamp.exists() and stamp.read_text() == ident:
        return saved
    stage(f"extracting {len(paths)} pristine files from {kbuild.SOURCE_TARBALL.name}")
    shutil.rmtree(saved, ignore_errors=True)
    saved.mkdir(parents=True)
    top = _tarball_top()
    run_logged(
        "extracting pristine files",
        ["tar", "-xJf", kbuild.SOURCE_TARBALL, "-C", saved, "--strip-components=1", *(f"{top}/{p}" for p in paths)],
        log_path("pristine"),
    )
    stamp.write_text(ident)
    return saved


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise StepFailed(f"git {' '.join(args)} failed in {repo}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def build_history(patches: list[SeriesPatch]) -> Path:
    """A git repository of the touched files: 6.12, then one commit a patch."""
    contents = staged_content(patches)
    touched = sorted({f for p in patches for f in kbuild.patch_files(p.path)})
    pristine = pristine_files(touched)
    repo = WORK / "git"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    env = _identity(patches[0].path)
    env["GIT_COMMITTER_DATE"] = env["GIT_AUTHOR_DATE"] = "2024-11-17 14:15 -0800"
    for rel in touched:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(pristine / rel, repo / rel)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "Linux 6.12: the files the series touches", env=env)
    for patch, content in zip(patches, contents, strict=True):
        try:
            _git(repo, "am", "-q", "--committer-date-is-author-date", str(patch.path), env=env)
        except StepFailed as e:
            raise StepFailed(f"{patch.name} does not apply in order\n{e}") from None
        changed = False
        for rel, data in content.items():
            path = repo / rel
            if path.exists() and path.read_bytes() == data:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            changed = True
        if changed:
            _git(repo, "add", "-A")
            _git(repo, "commit", "-q", "--amend", "--no-edit", env=env)
    return repo


@dataclass
class CheckpatchReport:
    """checkpatch.pl --strict findings over the series."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # (type, file) -> number of CHECKs
    checks: dict[tuple[str, str], int] = field(default_factory=dict)
    unjustified: list[str] = field(default_factory=list)
    per_patch: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.errors or self.warnings or self.unjustified)


def check_reasons() -> list[tuple[str, str, str]]:
    """kernel/patches/checkpatch-checks: (type, file glob, justification)."""
    reasons = []
    text = CHECK_REASONS.read_text() if CHECK_REASONS.exists() else ""
    for line in text.split("\n\n"):
        line = " ".join(ln for ln in line.splitlines() if not ln.startswith("#")).strip()
        if not line:
            continue
        head, _, why = line.partition(":")
        kind, _, glob = head.strip().partition(" ")
        reasons.append((kind, glob.strip() or "*", why.strip()))
    return reasons


def _reason(reasons: list[tuple[str, str, str]], kind: str, path: str) -> str | None:
    for k, glob, why in reasons:
        if k == kind and fnmatch(path, glob):
            return why
    return None


def run_checkpatch(files: list[Path], checkpatch: Path) -> CheckpatchReport:
    """checkpatch.pl --strict on each patch of @files."""
    report = CheckpatchReport()
    reasons = check_reasons()
    log = log_path("checkpatch-series")
    with open(log, "w") as out:
        for patch in files:
            proc = subprocess.run(
                [str(checkpatch), "--strict", "--no-tree", "--show-types", str(patch)], capture_output=True, text=True
            )
            out.write(f"== {patch.name}\n{proc.stdout}{proc.stderr}")
            counts = [0, 0, 0]
            lines = proc.stdout.splitlines()
            for i, line in enumerate(lines):
                m = FINDING.match(line)
                if not m:
                    continue
                level, kind, message = m.groups()
                where = FINDING_FILE.match(lines[i + 1]) if i + 1 < len(lines) else None
                path = where.group(1) if where else "(commit message)"
                text = f"{patch.name}: {level}:{kind}: {message} ({path})"
                if level == "ERROR":
                    counts[0] += 1
                    report.errors.append(text)
                elif level == "WARNING":
                    counts[1] += 1
                    report.warnings.append(text)
                else:
                    counts[2] += 1
                    key = (kind, path)
                    report.checks[key] = report.checks.get(key, 0) + 1
                    if _reason(reasons, kind, path) is None:
                        report.unjustified.append(text)
            report.per_patch[patch.name] = (counts[0], counts[1], counts[2])
    return report


def checkpatch_summary(report: CheckpatchReport) -> str:
    """The cover letter's checkpatch paragraph."""
    total = sum(report.checks.values())
    lines = [
        f"scripts/checkpatch.pl --strict on every patch: "
        f"{len(report.errors)} errors, {len(report.warnings)} warnings, "
        f"{total} checks."
    ]
    if not total:
        return "\n".join(lines)
    lines.append("The checks that remain, and why they stay:")
    by_reason: dict[tuple[str, str], dict[str, int]] = {}
    reasons = check_reasons()
    for (kind, path), n in sorted(report.checks.items()):
        why = _reason(reasons, kind, path) or "(no justification recorded)"
        by_reason.setdefault((kind, why), {})[path] = n
    for (kind, why), paths in by_reason.items():
        where = ", ".join(f"{p} ({n})" for p, n in paths.items())
        lines.append("")
        lines.append(f"- {kind}, {sum(paths.values())} in {where}:")
        lines.append(f"  {why}")
    return "\n".join(lines)


def _wrap(text: str, width: int = 72) -> str:
    """Wrap the paragraphs and "- " items of @text at @width columns."""
    out = []
    for line in text.split("\n"):
        indent = "  " if line.startswith("  ") else ""
        first = "- " if line.startswith("- ") else indent
        body = line[2:] if first else line
        if not line.strip():
            out.append("")
            continue
        out.append(
            textwrap.fill(
                body,
                width,
                initial_indent=first,
                subsequent_indent="  " if first else "",
                break_on_hyphens=False,
                break_long_words=False,
            )
        )
    return "\n".join(out)


def arm64_sentence() -> str:
    """What the last check-patches run found on arm64, for the cover letter."""
    if not CHECK_RESULTS.exists():
        return "arm64: cross-built and tested by `make check-patches`, which has not run in this build directory."
    res = json.loads(CHECK_RESULTS.read_text())
    arm = res.get("arm64", {})
    text = arm.get("summary")
    return str(text) if text else "arm64: not checked."


def fill_cover_letter(cover: Path, report: CheckpatchReport) -> None:
    template = COVER_LETTER.read_text().rstrip("\n")
    subject, _, body = template.partition("\n")
    body = body.strip("\n")
    body = body.replace("CHECKPATCH_SUMMARY", _wrap(checkpatch_summary(report)))
    body = body.replace("ARM64_RESULT", _wrap(arm64_sentence()))
    text = cover.read_text()
    if "*** SUBJECT HERE ***" not in text or "*** BLURB HERE ***" not in text:
        raise StepFailed(f"{cover} is not git format-patch's cover letter")
    text = text.replace("*** SUBJECT HERE ***", subject.strip())
    text = text.replace("*** BLURB HERE ***", body)
    cover.write_text(text)


def make_patches() -> tuple[list[Path], CheckpatchReport]:
    """Write the series into build/patches; return it and checkpatch's report.

    Raises StepFailed if a patch does not apply in order; what checkpatch
    found is in the report (see require_clean()).
    """
    patches = plan()
    stage(f"rebuilding the history of {len(patches)} patches ({WORK.relative_to(REPO)}/git)")
    repo = build_history(patches)
    shutil.rmtree(OUT, ignore_errors=True)
    _git(
        repo,
        "format-patch",
        "-q",
        "--cover-letter",
        "--no-signature",
        "--zero-commit",
        "-o",
        str(OUT),
        f"HEAD~{len(patches)}..HEAD",
        env=_identity(patches[0].path),
    )
    files = sorted(OUT.glob("*.patch"))
    cover, series = files[0], files[1:]
    kbuild.extract()  # for scripts/checkpatch.pl
    stage(f"checkpatch --strict on {len(series)} patches")
    report = run_checkpatch(series, kbuild.TREE / "scripts" / "checkpatch.pl")
    fill_cover_letter(cover, report)
    stage(f"series written to {OUT.relative_to(REPO)}/: {len(files)} files (log: {log_path('checkpatch-series')})")
    return files, report


def require_clean(report: CheckpatchReport) -> None:
    """Raise StepFailed on an error, a warning or an unjustified check."""
    if report.ok:
        return
    problems = report.errors + report.warnings + [f"{u} -- not justified in {show(CHECK_REASONS)}" for u in report.unjustified]
    raise StepFailed("checkpatch --strict on the series:\n  " + "\n  ".join(problems))


# ---- make check-patches ------------------------------------------------


def _fresh_tree() -> Path:
    tree = WORK / "linux"
    shutil.rmtree(tree, ignore_errors=True)
    kbuild.extract(tree)
    return tree


def _bisect_fragments() -> list[Path]:
    """The plain guest kernel's configuration, so ccache serves most steps."""
    return [kbuild.CONFIGS / "guest.config", REPO / kbuild.SELFTEST_DIR / "config"]


def _warnings(log: Path, since: int) -> list[str]:
    lines = log.read_text(errors="replace").splitlines()[since:]
    return [ln for ln in lines if COMPILER_WARNING.search(ln)]


def _log_lines(log: Path) -> int:
    return len(log.read_text(errors="replace").splitlines()) if log.exists() else 0


def _configured_objects(tree: Path, obj: Path) -> list[str]:
    """The new files' objects that the configuration in @obj builds.

    From mm/Makefile's obj-$(CONFIG_...) lines: a debug-only file (say
    touched_check.c) is left out when its option is off, as the kernel
    build leaves it out.
    """
    config = (obj / ".config").read_text(errors="replace") if (obj / ".config").exists() else ""
    enabled = set(re.findall(r"^(CONFIG_\w+)=y$", config, re.M))
    makefile = (tree / "mm" / "Makefile").read_text(errors="replace")
    objects = []
    for symbol, names in re.findall(r"^obj-\$\((CONFIG_\w+)\)\s*\+=(.*)$", makefile, re.M):
        for name in names.split():
            if name.startswith("touched_") and symbol in enabled:
                objects.append(f"mm/{name}")
    return sorted(objects)


def build_step(tree: Path, obj: Path, label: str) -> list[str]:
    """Configure and build @tree; return the compiler warnings."""
    kbuild.configure_tree(tree, obj, _bisect_fragments(), "series-x86", check=False)
    log = log_path("series-build")
    start = _log_lines(log)
    cc = "ccache gcc" if shutil.which("ccache") else "gcc"
    run_logged(
        f"kernel build after {label}",
        ["make", "-C", tree, f"O={obj}", f"-j{kbuild._jobs()}", f"CC={cc}", "bzImage"],
        log,
        append=True,
        env=kbuild.BUILD_ENV,
        excerpt=kbuild.BUILD_ERRORS,
    )
    ours = _configured_objects(tree, obj)
    if ours:
        # W=1 for the new files only: the rest of the tree is not W=1 clean.
        run_logged(
            f"W=1 build of the new files after {label}",
            ["make", "-C", tree, f"O={obj}", f"CC={cc}", "W=1", *ours],
            log,
            append=True,
            env=kbuild.BUILD_ENV,
            excerpt=kbuild.BUILD_ERRORS,
        )
    return _warnings(log, start)


def check_patches(arm64: bool = True, boot: bool = True) -> int:
    """Apply and build the series patch by patch, then cross-build arm64."""
    started = time.monotonic()
    # The build's own tree is what the series must end up as.
    kbuild.extract()
    kbuild.sync_tree()
    files, report = make_patches()
    require_clean(report)
    series = files[1:]
    tree = _fresh_tree()
    obj = WORK / "obj-x86"
    results: dict[str, object] = {"patches": {}}
    steps: dict[str, object] = {}
    problems: list[str] = []
    # The tree lies inside the repository's work tree, where git apply
    # would take paths as relative to the repository and skip them all.
    alone = {"GIT_CEILING_DIRECTORIES": str(tree.parent)}
    for i, patch in enumerate(series, 1):
        t0 = time.monotonic()
        stage(f"[{i}/{len(series)}] applying and building {patch.name}")
        try:
            run_logged(f"git apply {patch.name}", ["git", "apply", "--check", patch], log_path("series-apply"), cwd=tree, env=alone)
            run_logged(
                f"git apply {patch.name}", ["git", "apply", patch], log_path("series-apply"), cwd=tree, append=True, env=alone
            )
        except StepFailed as e:
            raise StepFailed(f"{patch.name} does not apply to the tree left by the patches before it\n{e}") from None
        warnings = build_step(tree, obj, patch.name)
        problems += [f"{patch.name}: {w}" for w in warnings]
        step: dict[str, object] = {"build_s": round(time.monotonic() - t0, 1), "warnings": len(warnings)}
        selftests = tree / kbuild.SELFTEST_DIR
        if selftests.is_dir() and "selftests" not in results:
            stage("building the selftests the series adds")
            run_logged("make headers", ["make", "-C", tree, f"O={obj}", "headers"], log_path("series-headers"))
            out = WORK / "selftests"
            out.mkdir(parents=True, exist_ok=True)
            log = log_path("series-selftests")
            run_logged(
                "selftest build",
                ["make", "-C", selftests, f"OUTPUT={out}", f"KHDR_INCLUDES=-isystem {obj / 'usr' / 'include'}"],
                log,
                excerpt=kbuild.BUILD_ERRORS,
            )
            found = _warnings(log, 0)
            problems += [f"selftests: {w}" for w in found]
            results["selftests"] = {"built": sorted(p.name for p in out.iterdir() if os.access(p, os.X_OK)), "warnings": len(found)}
        if (tree / "Documentation/userspace-api/touched_sweep.rst").exists() and "docs" not in results:
            results["docs"] = docs_check(tree, problems)
        steps[patch.name] = step
    results["patches"] = steps
    differ = [
        rel for rel, data in kbuild.desired_content().items() if not (tree / rel).exists() or (tree / rel).read_bytes() != data
    ]
    if differ:
        raise StepFailed(f"after the series the tree differs from what the build uses in: {', '.join(differ)}")
    if arm64:
        results["arm64"] = arm64_check(tree, boot, problems)
    results["checkpatch"] = {"errors": len(report.errors), "warnings": len(report.warnings), "checks": sum(report.checks.values())}
    results["seconds"] = round(time.monotonic() - started)
    CHECK_RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    # The cover letter reports the arm64 result just measured.
    require_clean(make_patches()[1])
    print_check_summary(results, problems)
    return 1 if problems else 0


def docs_check(tree: Path, problems: list[str]) -> dict[str, object]:
    """kernel-doc on the new sources and headers, and the Sphinx build."""
    stage("kernel-doc on the new sources and headers")
    sources = sorted(rel for rel in kbuild.overlay_content() if rel.endswith((".c", ".h")) and not rel.startswith("tools/"))
    found = docs.kernel_doc_warnings(tree, sources)
    problems += [f"kernel-doc: {w}" for w in found]
    result: dict[str, object] = {"kernel_doc_files": len(sources), "kernel_doc_warnings": len(found)}
    if shutil.which("sphinx-build"):
        stage("building the documentation the series adds (Sphinx)")
        t0 = time.monotonic()
        found = docs.build_htmldocs(tree, WORK / "docs", ["userspace-api", "admin-guide/mm"])
        problems += [f"htmldocs: {w}" for w in found]
        result["htmldocs_warnings"] = len(found)
        result["htmldocs_s"] = round(time.monotonic() - t0)
    else:
        result["htmldocs"] = "sphinx-build not installed"
        problems.append("htmldocs: sphinx-build is not installed (tools/testing/harness/install-deps --patches)")
    return result


def arm64_check(tree: Path, boot: bool, problems: list[str]) -> dict[str, object]:
    """Cross-build the series' tree for arm64; boot it and run the selftests."""
    import arm64  # imports suite, which imports this module

    t0 = time.monotonic()
    result: dict[str, object] = {}
    out = WORK / "arm64"
    try:
        image, initramfs = arm64.build_all(tree, WORK / "obj-arm64", out)
    except StepFailed as e:
        problems.append(f"arm64 build: {e}")
        result["summary"] = "arm64: the cross-build FAILED."
        return result
    result["build_s"] = round(time.monotonic() - t0)
    built = (
        "arm64: the series cross-builds with aarch64-linux-gnu-gcc "
        "(tinyconfig plus the selftests' options, lockdep and "
        "DEBUG_VM; no MEM_SOFT_DIRTY, which arm64 lacks)"
    )
    if not boot:
        result["summary"] = built + "; it was not booted."
        return result
    stage("booting arm64 (qemu-system-aarch64, TCG) to run the selftests")
    booted = arm64.boot_arm64(image, initramfs, stream=False, results=out / "results")
    result["boot_s"] = round(booted.times.get("boot+tests", 0.0))
    result["tests"] = {
        t.name: {"passed": t.counts.passed, "failed": t.counts.failed, "skipped": t.counts.skipped, "status": t.status}
        for t in booted.tests
    }
    result["splats"] = booted.splats
    problems += [f"arm64 guest: {why}" for why in booted.problems()]
    passed = sum(t.counts.passed for t in booted.tests)
    failed = sum(t.counts.failed for t in booted.tests)
    skipped = sum(t.counts.skipped for t in booted.tests)
    result["summary"] = (
        f"{built}.  Booted in qemu-system-aarch64 under TCG emulation "
        f"(-cpu {arm64.DEFAULT_CPU}, hardware dirty-bit management on), it "
        f"runs the {len(booted.tests)} selftest programs: {passed} passed, "
        f"{failed} failed, {skipped} skipped"
        + (", console clean" if not booted.splats else f", {len(booted.splats)} kernel splats")
        + f"; boot and tests took {result['boot_s']} s."
    )
    return result


def print_check_summary(results: dict[str, object], problems: list[str]) -> None:
    steps = results["patches"]
    assert isinstance(steps, dict)
    print(f"\ncheck-patches: {len(steps)} patches applied and built one by one; {results['seconds']} s in all")
    for name, step in steps.items():
        print(f"  {name[:56]:56} {step['build_s']:6.1f} s, {step['warnings']} warnings")
    selftests = results.get("selftests")
    if isinstance(selftests, dict):
        print(f"  selftests: {len(selftests['built'])} built, {selftests['warnings']} warnings")
    docs_result = results.get("docs")
    if isinstance(docs_result, dict):
        print(
            f"  kernel-doc: {docs_result['kernel_doc_warnings']} warnings "
            f"in {docs_result['kernel_doc_files']} files; Sphinx: "
            f"{docs_result.get('htmldocs_warnings', 'not run')} warnings"
            + (f" ({docs_result['htmldocs_s']} s)" if "htmldocs_s" in docs_result else "")
        )
    arm = results.get("arm64")
    if isinstance(arm, dict):
        print("  " + textwrap.fill(str(arm.get("summary")), 76, subsequent_indent="    "))
    print(f"  checkpatch --strict: {results['checkpatch']}")
    if problems:
        print(f"check-patches: {len(problems)} problem(s):")
        for p in problems:
            print(f"  {p}")
    else:
        print("check-patches: ok")
