"""Make one system call fail (or kill the process) with a seccomp filter.

As a module: :func:`deny_syscall` installs a classic-BPF filter in the
calling process (after PR_SET_NO_NEW_PRIVS; both are inherited by children
and kept across execve).  As a script, it installs the filter and execs a
command, e.g. to run something as if the kernel had no syscall 463::

    python3 tests/seccomp_filter.py --nr 463 --errno ENOSYS -- python3 -c '...'

A filter can only be added, never removed; several filters stack and the
strictest answer wins.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import platform
import struct

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

# Offsets in struct seccomp_data.
_NR_OFFSET = 0
_ARCH_OFFSET = 4

# Classic BPF opcodes.
_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
_RET_K = 0x06 | 0x00  # BPF_RET | BPF_K

AUDIT_ARCHES = {
    "x86_64": 0xC000003E,  # AUDIT_ARCH_X86_64
    "aarch64": 0xC00000B7,  # AUDIT_ARCH_AARCH64
}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def audit_arch() -> int:
    """The AUDIT_ARCH_* value of this machine; KeyError where unknown here."""
    return AUDIT_ARCHES[platform.machine()]


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def filter_program(nr: int, action: int, arch: int) -> bytes:
    """A program answering ``action`` for syscall ``nr`` of ``arch``, allowing the rest."""
    return b"".join(
        [
            _insn(_LD_W_ABS, 0, 0, _ARCH_OFFSET),
            _insn(_JEQ_K, 0, 3, arch),  # another arch: allow
            _insn(_LD_W_ABS, 0, 0, _NR_OFFSET),
            _insn(_JEQ_K, 0, 1, nr),
            _insn(_RET_K, 0, 0, action),
            _insn(_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        ]
    )


def deny_syscall(nr: int, error: int | None = errno.ENOSYS) -> None:
    """Make syscall ``nr`` fail with ``error`` from now on, or kill the
    process when ``error`` is None."""
    action = SECCOMP_RET_KILL_PROCESS if error is None else SECCOMP_RET_ERRNO | (error & 0xFFFF)
    program = filter_program(nr, action, audit_arch())
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buffer))

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    libc.prctl.restype = ctypes.c_int
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_SECCOMP): {os.strerror(err)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nr", type=int, required=True, help="syscall number")
    parser.add_argument("--errno", default="ENOSYS", help="errno name or number to return (0: return 0), or KILL")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- command [args...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    if args.errno == "KILL":
        error = None
    else:
        error = int(args.errno) if args.errno.isdigit() else getattr(errno, args.errno)
    deny_syscall(args.nr, error)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
