"""The mappings of a process, and which of them can be tracked and dumped.

One parser of ``/proc/PID/maps`` (and of ``smaps``, for each mapping's
``VmFlags``), one :class:`Mapping` type, and one set of rules, which
``pysweep track``, ``pysweep dump`` and :class:`~pysweep.dump.Dumper` all
use: :func:`untrackable_reason` says why a mapping cannot be tracked,
:func:`undumpable_reason` why it is not dumped.
"""

from __future__ import annotations

import errno as errno_codes
import functools
import os
import re

import attrs

__all__ = [
    "READ_ONLY_REASON",
    "Mapping",
    "mapped_window",
    "parse_maps",
    "read_maps",
    "undumpable_reason",
    "untrackable_reason",
]

# Reasons for not tracking a mapping, by smaps VmFlags mnemonic.
_INELIGIBLE_FLAGS = (
    ("gd", "a stack that grows on faults (VM_GROWSDOWN) cannot be tracked"),
    ("ht", "hugetlb mappings cannot be tracked"),
    ("pf", "driver mapping (VM_PFNMAP) cannot be tracked"),
    ("io", "device mapping (VM_IO) cannot be tracked"),
    ("mm", "driver mapping (VM_MIXEDMAP) cannot be tracked"),
    ("de", "special mapping (VM_DONTEXPAND) cannot be tracked"),
    ("ss", "shadow stacks cannot be tracked"),
    ("dp", "MAP_DROPPABLE mappings cannot be tracked"),
    ("sl", "sealed (mseal) mappings cannot be tracked"),
)

#: Why a read-only mapping is not tracked, unless asked to be.
READ_ONLY_REASON = "not writable now (--read-only tracks it too)"


@attrs.frozen
class Mapping:
    """One mapping of ``/proc/PID/maps``: ``[start, end)``, its permissions
    (``rw-p``), its offset into the file and the path or name the kernel
    shows (``""`` for anonymous memory, ``[heap]``, ``/usr/lib/libc.so.6``).
    ``vmflags`` holds the ``VmFlags`` mnemonics when it was read from
    ``smaps``, else ``None``.
    """

    start: int = attrs.field(repr=hex)
    end: int = attrs.field(repr=hex)
    perms: str
    path: str = ""
    offset: int = attrs.field(default=0, repr=hex)
    vmflags: frozenset[str] | None = None

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def readable(self) -> bool:
        return self.perms[:1] == "r"

    @property
    def writable(self) -> bool:
        return self.perms[1:2] == "w"

    @property
    def shared(self) -> bool:
        return self.perms[3:4] == "s"

    @property
    def file_private(self) -> bool:
        """A private mapping of a file: its pages are the file's until a
        write gives the process a copy of its own."""
        return not self.shared and _is_file_path(self.path)

    @property
    def tracked(self) -> bool:
        """Tracked by touched_sweep (``tt`` in ``VmFlags``; ``False`` when not read from smaps)."""
        return self.vmflags is not None and "tt" in self.vmflags


def _is_file_path(path: str) -> bool:
    return bool(path) and not path.startswith("[") and not path.startswith("/dev/zero")


# start-end perms offset dev inode [path]; the path may hold spaces.
_MAPS_LINE = re.compile(rb"^([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) \S+ \S+(?: +(.*))?$", re.MULTILINE)
_VMFLAGS_LINE = re.compile(rb"^VmFlags:(.*)$", re.MULTILINE)


def parse_maps(text: bytes, *, writable_only: bool = False) -> list[Mapping]:
    """The mappings a ``/proc/PID/maps`` text lists, in order; only the
    writable ones with ``writable_only``."""
    return list(_parse_maps(text, writable_only))


@functools.lru_cache(maxsize=4)
def _parse_maps(text: bytes, writable_only: bool) -> tuple[Mapping, ...]:
    # The lines are split in one regular expression, and a Mapping made
    # only for the lines kept; the result is remembered: a dump reads the
    # maps in one round and again, mostly unchanged, in the frozen one,
    # where each millisecond counts.
    return tuple(
        Mapping(int(start, 16), int(end, 16), perms.decode(), os.fsdecode(path.strip()), int(offset, 16))
        for start, end, perms, offset, path in _MAPS_LINE.findall(text)
        if not writable_only or perms[1:2] == b"w"
    )


def _parse_smaps(text: bytes) -> list[Mapping]:
    # Each mapping's header line is followed by its counters, then VmFlags.
    headers = list(_MAPS_LINE.finditer(text))
    flag_lines = _VMFLAGS_LINE.finditer(text)
    flag_line = next(flag_lines, None)
    found = []
    for index, header in enumerate(headers):
        start, end, perms, offset, path = header.groups()
        limit = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        vmflags = None
        if flag_line is not None and flag_line.start() < limit:
            vmflags = frozenset(flag_line.group(1).decode().split())
            flag_line = next(flag_lines, None)
        found.append(
            Mapping(int(start, 16), int(end, 16), perms.decode(), os.fsdecode((path or b"").strip()), int(offset, 16), vmflags)
        )
    return found


def read_maps(pid: int | str, *, writable_only: bool = False, with_flags: bool = False) -> list[Mapping]:
    """The mappings of ``pid``, in address order.

    ``writable_only`` keeps the writable ones; ``with_flags`` reads
    ``smaps`` instead, for each mapping's ``VmFlags`` (slower: the kernel
    counts every mapping's pages for it).  A process that does not exist
    raises :class:`ProcessLookupError`, one the caller may not look at
    :class:`PermissionError`.
    """
    path = f"/proc/{pid}/{'smaps' if with_flags else 'maps'}"
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        raise ProcessLookupError(errno_codes.ESRCH, f"no process with pid {pid}") from None
    except PermissionError as exc:
        raise PermissionError(exc.errno, f"cannot read {path}: {exc.strerror}") from None
    if not with_flags:
        return parse_maps(text, writable_only=writable_only)
    return [m for m in _parse_smaps(text) if not writable_only or m.writable]


def mapped_window(pid: int) -> tuple[int, int]:
    """From the lowest to the highest mapped user address of ``pid`` (``[vsyscall]`` aside)."""
    mappings = [m for m in read_maps(pid) if m.path != "[vsyscall]"]
    if not mappings:
        raise ProcessLookupError(
            errno_codes.ESRCH, f"pid {pid} has no memory mapped (a kernel thread, or a process that has exited)"
        )
    return min(m.start for m in mappings), max(m.end for m in mappings)


def _special(path: str) -> bool:
    # Named by the kernel: [vdso], [vvar], [vsyscall], [uprobes] and the
    # like; [heap] and named anonymous memory ([anon:name],
    # [anon_shmem:name]) are ordinary memory.
    return path.startswith("[") and path != "[heap]" and not path.startswith("[anon")


def untrackable_reason(mapping: Mapping, *, read_only: bool = False) -> str | None:
    """Why ``mapping`` cannot be tracked, or ``None`` if it can.

    The ``VmFlags`` rules apply when they were read (:func:`read_maps` with
    ``with_flags``); a read-only mapping is refused unless ``read_only``.
    """
    if mapping.path == "[stack]":
        return "the main thread's stack grows on faults and cannot be tracked"
    if _special(mapping.path):
        return "kernel-provided mapping, cannot be tracked"
    for flag, reason in _INELIGIBLE_FLAGS:
        if mapping.vmflags is not None and flag in mapping.vmflags:
            return reason
    if not mapping.writable and not read_only:
        return READ_ONLY_REASON
    return None


def undumpable_reason(mapping: Mapping) -> str | None:
    """Why ``mapping`` is not dumped incrementally, or ``None`` if it is.

    Writable private and shared anonymous memory is dumped, and so are
    writable private file mappings (a program's ``.data``, a library's
    writable segment), of which only the pages the process has its own
    copy of go into the image: the others are the file's.  What cannot be
    tracked is not dumped either (:func:`untrackable_reason`).
    """
    if not mapping.writable:
        return "not writable"
    if not mapping.readable:
        return "not readable: process_vm_readv() cannot copy it"
    if mapping.shared and _is_file_path(mapping.path):
        return "shared file mapping: its content is the file's"
    return untrackable_reason(mapping)
