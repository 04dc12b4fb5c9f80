"""The compiled binding agrees with the uapi header it was built from."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pysweep
from pysweep import _build_ffi
from pysweep._syscall import ffi, lib

HEADER = Path(_build_ffi.HEADER)


def header_struct_fields(name: str) -> list[str]:
    body = re.search(rf"struct {name} {{(.*?)}};", HEADER.read_text(), re.S)
    assert body, name
    return re.findall(r"^\s*__[us]\d+\s+(\w+);", body.group(1), re.M)


def test_module_imports_from_the_package() -> None:
    assert pysweep._syscall.lib is lib
    native = sys.modules["pysweep._native"].__file__
    assert native is not None and Path(native).parent == Path(pysweep.__file__).parent


def test_args_size_is_the_first_published_size() -> None:
    assert ffi.sizeof("struct touched_sweep_args") == lib.TOUCHED_SWEEP_ARGS_SIZE_VER0 == pysweep.ARGS_SIZE
    assert pysweep.ARGS_SIZE_VER0 == 56


@pytest.mark.parametrize("struct", ["touched_sweep_args", "touched_range"])
def test_fields_are_the_headers_in_its_order(struct: str) -> None:
    names = [name for name, _ in ffi.typeof(f"struct {struct}").fields]
    assert names == header_struct_fields(struct)


def test_args_layout_is_the_abi() -> None:
    # The layout is ABI: a change here breaks every caller built before it.
    offsets = {name: ffi.offsetof("struct touched_sweep_args", name) for name in header_struct_fields("touched_sweep_args")}
    assert offsets == {"size": 0, "op": 8, "flags": 12, "start": 16, "end": 24, "vec": 32, "vec_len": 40, "walk_end": 48}
    assert ffi.sizeof("struct touched_range") == 24
    assert [ffi.offsetof("struct touched_range", f) for f in ("start", "end", "flags")] == [0, 8, 16]


def test_constants_come_from_the_header() -> None:
    defines = dict(re.findall(r"^#define\s+(TOUCHED_\w+)\s+(\S.*?)\s*(?:/\*.*)?$", HEADER.read_text(), re.M))
    assert set(defines) == {name for name in dir(lib) if name.startswith("TOUCHED_")}
    assert [int(op) for op in pysweep.Op] == [lib.TOUCHED_SWEEP_OP_TRACK, lib.TOUCHED_SWEEP_OP_UNTRACK, lib.TOUCHED_SWEEP_OP_SWEEP]
    assert int(pysweep.SweepFlag.CLEAR) == lib.TOUCHED_SWEEP_FLAGS_MASK
    assert (pysweep.Op.TRACK, pysweep.Op.UNTRACK, pysweep.Op.SWEEP) == (1, 2, 3)
    assert (pysweep.RangeFlag.TOUCHED, pysweep.RangeFlag.GONE, pysweep.RangeFlag.OVERREPORTED) == (1, 2, 4)


def test_syscall_number() -> None:
    assert pysweep.NR_TOUCHED_SWEEP == 463


def test_cdef_is_derived_from_the_header(tmp_path: Path) -> None:
    header = tmp_path / "linux" / "thing.h"
    header.parent.mkdir()
    header.write_text(
        textwrap.dedent(
            """\
            #ifndef _THING_H
            #define _THING_H
            #include <linux/types.h>
            #define THING_A 7 /* a comment */
            #define THING_B (THING_A << 2)
            #define THING_F(x) ((x) + 1)
            struct thing {
            \t__u64 one;
            \t__s32 two;
            \t__be16 three;
            };
            #endif
            """
        )
    )
    cdef = _build_ffi.header_cdef(header, tmp_path)
    assert "#define THING_A ..." in cdef and "#define THING_B ..." in cdef
    assert "THING_F" not in cdef and "_THING_H" not in cdef
    assert "struct thing {" in cdef and "__be16 three;" in cdef
    assert {"typedef int... __u64;", "typedef int... __s32;", "typedef int... __be16;"} <= set(cdef.splitlines())
    assert "__kernel" not in cdef  # nothing from <linux/types.h> itself


def test_builds_in_place_with_build_temp_under_build(tmp_path: Path) -> None:
    # The same command the top-level build runs, in a copy of the tree.
    root = Path(__file__).resolve().parents[2]
    copy = tmp_path / "tree"
    for part in ("setup.py", "pyproject.toml", "pysweep", "include/uapi/linux/touched_sweep.h"):
        source, target = root / part, copy / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            target.mkdir()
            for file in [*source.glob("*.py"), *source.glob("*.c")]:
                (target / file.name).write_bytes(file.read_bytes())
        else:
            target.write_bytes(source.read_bytes())
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace", "--build-temp", "build/py"],
        cwd=copy,
        check=True,
        capture_output=True,
    )
    assert list((copy / "pysweep").glob("_native*.so"))
    out = subprocess.run(
        [sys.executable, "-c", "import pysweep; print(pysweep.ARGS_SIZE, pysweep.__file__)"],
        cwd=copy,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out == ["56", str(copy / "pysweep" / "__init__.py")]
