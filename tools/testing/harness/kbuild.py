"""Build the patched guest kernel and the selftests.

The source tree is extracted once into build/linux.  Every build then brings
it up to date with the repository: the new files are copied in (overlays)
and the patch series is applied to pristine copies of the files it touches.
Only files whose content changed are written, so make rebuilds only what an
edit affects and editing kernel/mm/*.c never re-extracts the tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from common import BUILD, REPO, StepFailed, log_path, run_logged, stage

SOURCE_TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
TREE = BUILD / "linux"
# The same source, never patched: the baseline for upstream selftests.
VANILLA_TREE = BUILD / "linux-vanilla"
STAMP_NAME = ".harness-source"
# Pristine copies of the tree files the repository changed, and a record of
# what it wrote, so that a file dropped from the series can be restored.
STATE = BUILD / "tree-state"
PATCHES = REPO / "kernel" / "patches"
CONFIGS = REPO / "tools" / "testing" / "harness" / "configs"

# Repository directory -> tree directory for files new to the kernel.
OVERLAYS = [
    ("kernel/mm", "mm"),
    ("include/linux", "include/linux"),
    ("include/uapi/linux", "include/uapi/linux"),
    ("tools/testing/selftests/touched_sweep", "tools/testing/selftests/touched_sweep"),
    ("Documentation", "Documentation"),
]

FLAVOURS = {
    "plain": ["guest.config", "plain.config"],
    "debug": ["guest.config", "debug.config"],
    # The debug kernel built from the unpatched tree, without the feature.
    "vanilla": ["guest.config", "debug.config"],
}
FEATURE_OPTION = "CONFIG_TOUCHED_SWEEP"
SELFTEST_DIR = "tools/testing/selftests/touched_sweep"
# The kselftests as `make install` of tools/testing/selftests lays them
# out: run_kselftest.sh, the runner and kselftest-list.txt on top, the
# programs and their settings file in touched_sweep/.
SELFTESTS_INSTALL = BUILD / "selftests" / "install"
SELFTESTS_OUT = SELFTESTS_INSTALL / "touched_sweep"
# Log lines that explain a failed compile or link.
BUILD_ERRORS = r"error:|Error \d|undefined reference|\*\*\* "

# Fixed build identity keeps init/version.o and ccache hits stable, and
# relative paths let clones in other directories share the cache.
BUILD_ENV = {
    "CCACHE_BASEDIR": str(REPO),
    "CCACHE_NOHASHDIR": "1",
    "KBUILD_BUILD_TIMESTAMP": "harness",
    "KBUILD_BUILD_USER": "harness",
    "KBUILD_BUILD_HOST": "harness",
    "CCACHE_MAXSIZE": os.environ.get("CCACHE_MAXSIZE", "8G"),
}


def tree_for(flavour: str) -> Path:
    return VANILLA_TREE if flavour == "vanilla" else TREE


def obj_dir(flavour: str) -> Path:
    return BUILD / f"obj-{flavour}"


def bzimage(flavour: str) -> Path:
    return obj_dir(flavour) / "arch" / "x86" / "boot" / "bzImage"


def _jobs() -> str:
    """What nproc prints: the CPUs this process may run on."""
    return str(len(os.sched_getaffinity(0)))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tarball_identity() -> str:
    st = SOURCE_TARBALL.stat()
    return f"{SOURCE_TARBALL} {st.st_size} {int(st.st_mtime)}\n"


def extract(tree: Path = TREE) -> None:
    """Extract the kernel source once; again only if the tarball changed."""
    if not SOURCE_TARBALL.exists():
        raise StepFailed(f"{SOURCE_TARBALL} is missing (apt-get install linux-source-6.12)")
    ident = _tarball_identity()
    stamp = tree / STAMP_NAME
    if stamp.exists() and stamp.read_text() == ident:
        return
    stage(f"extracting {SOURCE_TARBALL.name} into {tree.relative_to(REPO)}")
    stale = [tree] + [obj_dir(f) for f in FLAVOURS if tree_for(f) == tree]
    if tree == TREE:
        stale.append(STATE)
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    BUILD.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
        run_logged("extracting the kernel source", ["tar", "-C", tmp, "-xJf", SOURCE_TARBALL], log_path("extract"))
        (top,) = Path(tmp).iterdir()
        top.rename(tree)
    stamp.write_text(ident)


def patch_files(patch: Path) -> list[str]:
    """Tree paths a patch touches, from its +++/--- headers."""
    paths = []
    for line in patch.read_text(errors="replace").splitlines():
        if line.startswith(("--- a/", "+++ b/")):
            paths.append(line[6:].split("\t")[0])
    return sorted(set(paths))


def series_patches() -> list[Path]:
    series = PATCHES / "series"
    names = [ln.strip() for ln in series.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return [PATCHES / n for n in names]


def overlaid_sources() -> list[str]:
    """Tree paths of the new C sources and headers the repository adds."""
    return sorted(rel for rel in overlay_content() if rel.endswith((".c", ".h")))


def overlay_content() -> dict[str, bytes]:
    want: dict[str, bytes] = {}
    for src, dst in OVERLAYS:
        root = REPO / src
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                want[f"{dst}/{path.relative_to(root)}"] = path.read_bytes()
    return want


def _pristine(rel: str) -> bytes | None:
    """Content of @rel before the repository changed it; None if new."""
    saved = STATE / "pristine" / rel
    if saved.exists():
        return saved.read_bytes()
    if (STATE / "new" / rel).exists():
        return None
    cur = TREE / rel
    return cur.read_bytes() if cur.exists() else None


def _remember_pristine(rel: str) -> None:
    saved = STATE / "pristine" / rel
    marker = STATE / "new" / rel
    if saved.exists() or marker.exists():
        return
    cur = TREE / rel
    target = saved if cur.exists() else marker
    target.parent.mkdir(parents=True, exist_ok=True)
    if cur.exists():
        shutil.copy2(cur, saved)
    else:
        marker.touch()


def desired_content() -> dict[str, bytes]:
    """What every file the repository manages should contain."""
    want = overlay_content()
    series = series_patches()
    touched = sorted({f for p in series for f in patch_files(p)})
    clash = set(touched) & set(want)
    if clash:
        raise StepFailed(f"files both overlaid and patched: {sorted(clash)}")

    log = log_path("patch")
    log.write_text("")
    with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
        stage_dir = Path(tmp)
        for rel in touched:
            data = _pristine(rel)
            if data is not None:
                (stage_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                (stage_dir / rel).write_bytes(data)
        for patch in series:
            try:
                run_logged(
                    f"applying {patch.name}",
                    ["patch", "-p1", "--batch", "--forward", "--no-backup-if-mismatch", "-r", "-", "-d", stage_dir, "-i", patch],
                    log,
                    append=True,
                )
            except StepFailed as e:
                raise StepFailed(f"patch {patch.name} does not apply\n{e}") from e
        for rel in touched:
            path = stage_dir / rel
            if path.exists():
                want[rel] = path.read_bytes()
    return want


def sync_tree() -> None:
    """Bring the tree up to date with the repository's overlays and series."""
    state_file = STATE / "written.json"
    previous: dict[str, str] = json.loads(state_file.read_text()) if state_file.exists() else {}
    want = desired_content()
    changed = []
    for rel, data in want.items():
        path = TREE / rel
        if path.exists() and path.read_bytes() == data:
            continue
        _remember_pristine(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        changed.append(rel)
    for rel in sorted(set(previous) - set(want)):
        original = _pristine(rel)
        path = TREE / rel
        if original is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(original)
        changed.append(rel)
    STATE.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps({r: _sha(d) for r, d in want.items()}, indent=1, sort_keys=True))
    if changed:
        shown = ", ".join(changed[:6]) + (" ..." if len(changed) > 6 else "")
        stage(f"tree updated: {len(changed)} file(s): {shown}")


def _repo_paths(text: str) -> str:
    """Point compiler messages about overlaid files at the repository copy."""
    for src, dst in OVERLAYS:
        text = text.replace(f"{TREE}/{dst}/", f"{REPO}/{src}/")
    return text


def _fragments(flavour: str) -> list[Path]:
    fragments = [CONFIGS / name for name in FLAVOURS[flavour]]
    if flavour != "vanilla":
        return [*fragments, TREE / SELFTEST_DIR / "config"]
    # The unpatched tree has no such option: leave it out.
    merged = obj_dir(flavour) / "harness-fragment.config"
    merged.parent.mkdir(parents=True, exist_ok=True)
    merged.write_text(
        "".join(line for f in fragments for line in f.read_text().splitlines(True) if not line.startswith(FEATURE_OPTION + "="))
    )
    return [merged]


def _requested_options(fragments: list[Path]) -> dict[str, str]:
    opts: dict[str, str] = {}
    for frag in fragments:
        for line in frag.read_text().splitlines():
            line = line.strip()
            if line.startswith("CONFIG_") and "=" in line:
                name, value = line.split("=", 1)
                opts[name] = value
    return opts


def _check_config(obj: Path, fragments: list[Path]) -> None:
    """Every option our own fragments ask for must have stuck."""
    have: dict[str, str] = {}
    for line in (obj / ".config").read_text().splitlines():
        if line.startswith("CONFIG_"):
            name, value = line.split("=", 1)
            have[name] = value
    missing = [f"{k}={v} (got {have.get(k, 'n')})" for k, v in _requested_options(fragments).items() if have.get(k, "n") != v]
    if missing:
        raise StepFailed("kernel config is missing requested options (a dependency is probably off):\n  " + "\n  ".join(missing))


def configure_tree(
    tree: Path, obj: Path, fragments: list[Path], name: str, make_vars: Sequence[str] = (), check: bool = True
) -> None:
    """tinyconfig plus @fragments for @tree in @obj, unless already done.

    @make_vars (ARCH=..., CROSS_COMPILE=...) go to every make call.  With
    @check, every option a fragment asks for must have stuck.
    """
    key = _sha(
        b"".join(f.read_bytes() for f in fragments)
        + (tree / STAMP_NAME).read_bytes()
        + (tree / "mm/Kconfig").read_bytes()
        + " ".join(make_vars).encode()
    )
    stamp = obj / ".harness-config"
    if (obj / ".config").exists() and stamp.exists() and stamp.read_text() == key:
        return
    stage(f"configuring the {name} kernel")
    obj.mkdir(parents=True, exist_ok=True)
    # A configuration that fails half-way must not pass for a good one.
    stamp.unlink(missing_ok=True)
    log = log_path(f"config-{name}")
    make: list[str | os.PathLike[str]] = ["make", "-C", tree, f"O={obj}", *make_vars]
    run_logged("make tinyconfig", [*make, "tinyconfig"], log)
    run_logged(
        "merging config fragments",
        [tree / "scripts/kconfig/merge_config.sh", "-m", "-O", obj, obj / ".config", *fragments],
        log,
        append=True,
        cwd=tree,
        env=dict(a.split("=", 1) for a in make_vars if a.startswith("ARCH=")),
    )
    run_logged("make olddefconfig", [*make, "olddefconfig"], log, append=True)
    if check:
        _check_config(obj, fragments)
    stamp.write_text(key)


def configure(flavour: str) -> None:
    configure_tree(tree_for(flavour), obj_dir(flavour), _fragments(flavour), flavour)


def build_kernel(flavour: str) -> Path:
    """Extract, sync, configure and build; return the bzImage."""
    if flavour not in FLAVOURS:
        raise StepFailed(f"unknown kernel flavour {flavour!r}")
    tree = tree_for(flavour)
    extract(tree)
    if tree == TREE:
        sync_tree()
    configure(flavour)
    obj = obj_dir(flavour)
    image = bzimage(flavour)
    before = image.stat().st_mtime if image.exists() else None
    stage(f"building the {flavour} kernel (log: {log_path('kernel-' + flavour)})")
    cc = "ccache gcc" if shutil.which("ccache") else "gcc"
    try:
        run_logged(
            f"kernel build ({flavour})",
            ["make", "-C", tree, f"O={obj}", f"-j{_jobs()}", f"CC={cc}", "bzImage"],
            log_path(f"kernel-{flavour}"),
            env=BUILD_ENV,
            excerpt=BUILD_ERRORS,
        )
    except StepFailed as e:
        raise StepFailed(_repo_paths(str(e))) from None
    run_logged("installing uapi headers", ["make", "-C", tree, f"O={obj}", "headers"], log_path(f"headers-{flavour}"))
    after = image.stat().st_mtime
    stage(f"kernel ready: {image.relative_to(REPO)}" + (" (unchanged)" if before == after else ""))
    return image


def headers_dir(flavour: str) -> Path:
    """The uapi headers 'make headers' installed for @flavour."""
    return obj_dir(flavour) / "usr" / "include"


def build_selftests(flavour: str) -> Path:
    """Build and install the touched_sweep kselftests against @flavour's
    headers, through the kselftest Makefile's own install target."""
    stage("building the selftests")
    headers = headers_dir(flavour)
    run_logged(
        "selftest build",
        [
            "make",
            "-C",
            TREE / "tools" / "testing" / "selftests",
            "TARGETS=touched_sweep",
            f"O={BUILD / 'selftests' / 'obj'}",
            f"INSTALL_PATH={SELFTESTS_INSTALL}",
            f"KHDR_INCLUDES=-isystem {headers}",
            "install",
        ],
        log_path("selftests"),
        excerpt=BUILD_ERRORS,
    )
    return SELFTESTS_OUT / "touched_sweep_test"


def kernel_release(flavour: str) -> str:
    out = subprocess.run(
        ["make", "-s", "-C", tree_for(flavour), f"O={obj_dir(flavour)}", "kernelrelease"], capture_output=True, text=True
    )
    return out.stdout.strip()
