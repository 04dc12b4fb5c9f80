"""The package's version and the address range of a buffer."""

from __future__ import annotations

import array
import mmap
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import pysweep

REPO = Path(__file__).resolve().parents[2]


def test_version_matches_the_project_metadata() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert pysweep.__version__ == project["version"]


def test_cli_prints_its_version() -> None:
    done = subprocess.run([sys.executable, "-m", "pysweep", "--version"], capture_output=True, text=True, cwd=REPO, check=False)
    assert done.returncode == 0
    assert done.stdout == f"pysweep {pysweep.__version__}\n"


def test_buffer_range_of_an_mmap_is_its_pages() -> None:
    with mmap.mmap(-1, 3 * pysweep.PAGE_SIZE) as m:
        start, end = pysweep.buffer_range(m)
        assert start % pysweep.PAGE_SIZE == 0 and end - start == 3 * pysweep.PAGE_SIZE
        # The range is this process's memory: ctypes sees the same address.
        import ctypes

        assert start == ctypes.addressof(ctypes.c_char.from_buffer(m))


def test_buffer_range_of_slices_bytearrays_and_arrays() -> None:
    data = bytearray(100)
    start, end = pysweep.buffer_range(data)
    assert end - start == 100
    assert pysweep.buffer_range(memoryview(data)[10:30]) == (start + 10, start + 30)
    numbers = array.array("q", range(8))
    first, last = pysweep.buffer_range(numbers)
    assert last - first == 64 and first == numbers.buffer_info()[0]
    # Read-only buffers have an address too.
    assert pysweep.buffer_range(b"abc")[1] - pysweep.buffer_range(b"abc")[0] == 3


def test_buffer_range_refuses_what_has_no_single_range() -> None:
    with pytest.raises(ValueError, match="not contiguous"):
        pysweep.buffer_range(memoryview(bytearray(16))[::2])
    with pytest.raises(ValueError, match="empty"):
        pysweep.buffer_range(bytearray())
    with pytest.raises(TypeError):
        pysweep.buffer_range(42)


def test_reprs_print_addresses_in_hex() -> None:
    written = pysweep.Range(0x7F0000001000, 0x7F0000003000)
    assert repr(written) == "Range(start=0x7f0000001000, end=0x7f0000003000, flags=<RangeFlag.TOUCHED: 1>)"
    result = pysweep.SweepResult([written], 0x7F0000004000)
    assert repr(result) == f"SweepResult(ranges=({written!r},), walk_end=0x7f0000004000)"


def test_a_tree_without_its_extensions_says_what_to_do(tmp_path: Path) -> None:
    # A copy of the package without the compiled modules, first on the path,
    # as a source tree is under pytest.
    import shutil

    copy = tmp_path / "pysweep"
    shutil.copytree(REPO / "pysweep", copy, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    done = subprocess.run([sys.executable, "-c", "import pysweep"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert f"pysweep._native is not built in {copy}." in done.stderr
    assert "pip install -e ." in done.stderr and "apt install gcc python3-dev" in done.stderr


def test_the_readme_quick_start_runs() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    works = [name for name, why in pysweep.available_backends().items() if why is None]
    if not works:
        pytest.skip("no backend can watch this process on this kernel")
    done = subprocess.run([sys.executable, "-c", example], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    name, written = done.stdout.split(" ", 1)
    assert name == works[0]
    assert written.startswith("Range(start=0x") and "TOUCHED" in written


def test_the_wheel_is_abi3_and_carries_the_metadata(tmp_path: Path) -> None:
    import zipfile

    done = subprocess.run(
        [
            sys.executable,
            "setup.py",
            "-q",
            "bdist_wheel",
            "--dist-dir",
            str(tmp_path / "dist"),
            "--bdist-dir",
            str(tmp_path / "bdist"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name.startswith(f"pysweep-{pysweep.__version__}-cp311-abi3-linux_")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(f"pysweep-{pysweep.__version__}.dist-info/METADATA").decode()
    assert {"pysweep/_native.abi3.so", "pysweep/_mainline.abi3.so", "pysweep/py.typed"} <= set(names)
    assert "License: GPL-2.0-only" in metadata
    assert "Description-Content-Type: text/markdown" in metadata and "## Quick start" in metadata
