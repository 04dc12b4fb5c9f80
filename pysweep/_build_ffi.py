"""cffi builder for ``pysweep._native``.

The binding is compiled against the project's uapi header, and its cdef is
derived from that same header: the C preprocessor expands it with ``-dD``
(keep ``#define`` directives) and line markers, only what comes from
``touched_sweep.h`` itself is kept, struct bodies are passed on verbatim and
object-like macros become ``#define NAME ...`` so that cffi takes their values
from the compiler.  Nothing about the layout is written down twice.

Used through ``setup.py`` (``cffi_modules``).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sysconfig
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
UAPI_INCLUDE = ROOT / "include" / "uapi"
HEADER = UAPI_INCLUDE / "linux" / "touched_sweep.h"

# Integer typedefs of <linux/types.h> the header may use; cffi is told only
# that they are integers and asks the compiler for their size.
_KERNEL_INT_TYPE = re.compile(r"\b__(?:[us](?:8|16|32|64)|[lb]e(?:16|32|64))\b")
_LINE_MARKER = re.compile(r'^#\s+\d+\s+"(?P<file>[^"]*)"')
_OBJECT_MACRO = re.compile(r"^#define\s+(?P<name>[A-Za-z_]\w*)(?P<body>\s.*)?$")

# The C source lives in a file of its own, so that editors and compilers see C.
_SOURCE_FILE = Path(__file__).with_name("_native_helpers.c")

_CDEF_TAIL = """
#define PYSWEEP_NR_TOUCHED_SWEEP ...
long pysweep_touched_sweep(int pidfd, void *args);
long pysweep_read_memory(int pid, void *local, unsigned long remote, unsigned long len);
#define PYSWEEP_READ_RANGES ...
long pysweep_read_ranges(int pid, void *local, unsigned long total, const unsigned long *ranges, unsigned long n);
"""


def _preprocessor() -> list[str]:
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return [*shlex.split(compiler), "-E"]


def header_cdef(header: Path = HEADER, include_dir: Path = UAPI_INCLUDE) -> str:
    """Return a cffi cdef for everything ``header`` itself declares."""
    expanded = subprocess.run(
        [*_preprocessor(), "-x", "c", "-dD", "-I", str(include_dir), str(header)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    current = None
    macros: list[str] = []
    declarations: list[str] = []
    for line in expanded.splitlines():
        marker = _LINE_MARKER.match(line)
        if marker:
            current = marker.group("file")
            continue
        if current != str(header) or not line.strip():
            continue
        if line.startswith("#"):
            macro = _OBJECT_MACRO.match(line)
            # Include guards are empty, function-like macros do not match;
            # neither has a value cffi could take.
            if macro and (macro.group("body") or "").strip():
                macros.append(f"#define {macro.group('name')} ...")
            continue
        declarations.append(line)

    body = "\n".join(declarations)
    typedefs = [f"typedef int... {name};" for name in sorted(set(_KERNEL_INT_TYPE.findall(body)))]
    return "\n".join([*typedefs, body, *macros]) + "\n"


def _relative(path: Path) -> str:
    # setuptools wants the dependencies of an extension relative to the project.
    return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)


def make_ffibuilder() -> FFI:
    """Build the :class:`cffi.FFI` describing ``pysweep._native``."""
    builder = FFI()
    builder.cdef(header_cdef() + _CDEF_TAIL)
    builder.set_source(
        "pysweep._native",
        _SOURCE_FILE.read_text(),
        include_dirs=[str(UAPI_INCLUDE)],
        depends=[_relative(HEADER), _relative(_SOURCE_FILE)],
    )
    return builder


ffibuilder = make_ffibuilder()
