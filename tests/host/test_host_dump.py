"""The dumper's parts that need no tracking: image format, maps, memory reads."""

from __future__ import annotations

import ctypes
import json
import mmap
import os
from pathlib import Path

import pytest

from pysweep import PAGE_SIZE, dump
from pysweep.dump import Mapping, dumpable_reason, load_image, read_maps, read_memory


def test_image_round_trip(tmp_path: Path) -> None:
    pages = {0x10000: b"a" * PAGE_SIZE, 0x11000: b"b" * PAGE_SIZE, 0x20000: b"c" * PAGE_SIZE}
    dump._write_round(tmp_path / "r", {"round": 0}, dump._runs(pages))
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    # Adjacent pages make one range; addresses are hex strings.
    assert [(r["start"], r["end"]) for r in manifest["ranges"]] == [("0x10000", "0x12000"), ("0x20000", "0x21000")]
    assert load_image(tmp_path / "r") == pages


def test_image_of_another_format_is_refused(tmp_path: Path) -> None:
    dump._write_round(tmp_path / "r", {}, iter([]))
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    manifest["format"] = dump.FORMAT + 1
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="format"):
        load_image(tmp_path / "r")


@pytest.mark.parametrize(
    ("perms", "path", "reason"),
    [
        ("rw-p", "", None),
        ("rw-s", "/dev/zero (deleted)", None),
        ("rw-p", "[heap]", None),
        ("r--p", "", "not writable"),
        ("rw-p", "[stack]", "the main stack grows on faults and cannot be tracked"),
        ("rw-p", "[vvar]", "special mapping [vvar]"),
        ("rw-p", "/usr/lib/libc.so.6", "file mapping"),
    ],
)
def test_what_is_dumped(perms: str, path: str, reason: str | None) -> None:
    assert dumpable_reason(Mapping(0x1000, 0x2000, perms, path)) == reason


def test_own_maps_and_memory() -> None:
    buf = mmap.mmap(-1, 2 * PAGE_SIZE)
    buf[:5] = b"hello"
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    maps = read_maps(os.getpid())
    assert any(m.start <= addr < m.end and "w" in m.perms for m in maps)
    assert read_memory(os.getpid(), addr, 5) == b"hello"
    with pytest.raises(OSError, match="process_vm_readv"):
        read_memory(os.getpid(), 0, PAGE_SIZE)
