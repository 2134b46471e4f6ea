"""A small seccomp filter for local sandboxes, handed to bwrap with `--seccomp`.

bwrap already drops every capability, so most dangerous syscalls fail with EPERM
anyway. This filter is defence in depth against kernel bugs in interfaces a web
project never needs (keyrings, BPF, io_uring, userfaultfd, perf, ptrace, mounts,
namespaces, and reaching into other processes with pidfd_open, pidfd_getfd and
process_madvise), and it closes terminal injection: `ioctl(TIOCSTI)` and
`ioctl(TIOCLINUX)` fail with EPERM whatever the fd. Denied calls return EPERM
rather than killing, so tools that probe for a feature fall back cleanly.

The filter is x86-64 only: other architectures get no filter (`program()` returns
None) and rely on the capability drop. Syscalls from another ABI (i386 through
`int 0x80`, x32) cannot be matched by number, so the first kills the process and
the second gets EPERM.
"""

from __future__ import annotations

import errno
import platform
import struct

# classic BPF opcodes
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K

_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_RET_EPERM = 0x00050000 | errno.EPERM

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000

# offsets in struct seccomp_data
_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARG1_LOW = 24  # args[1], low 32 bits on little-endian; ioctl's cmd is 32-bit

_NR_IOCTL = 16
TIOCSTI = 0x5412
TIOCLINUX = 0x541C

DENIED_X86_64: dict[str, int] = {
    "ptrace": 101,
    "syslog": 103,
    "uselib": 134,
    "pivot_root": 155,
    "_sysctl": 156,
    "adjtimex": 159,
    "chroot": 161,
    "acct": 163,
    "settimeofday": 164,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "sethostname": 170,
    "setdomainname": 171,
    "iopl": 172,
    "ioperm": 173,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "lookup_dcookie": 212,
    "clock_settime": 227,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "clock_adjtime": 305,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "pidfd_open": 434,
    "pidfd_getfd": 438,
    "process_madvise": 440,
    "mount_setattr": 442,
}


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program() -> bytes | None:
    """The compiled filter (an array of struct sock_filter), or None off x86-64."""
    if platform.machine() != "x86_64":
        return None
    insns = [
        _insn(_LD_W_ABS, 0, 0, _OFF_ARCH),
        _insn(_JEQ_K, 1, 0, _AUDIT_ARCH_X86_64),
        _insn(_RET_K, 0, 0, _RET_KILL_PROCESS),
        _insn(_LD_W_ABS, 0, 0, _OFF_NR),
        _insn(_JGE_K, 0, 1, _X32_SYSCALL_BIT),
        _insn(_RET_K, 0, 0, _RET_EPERM),
    ]
    for nr in sorted(DENIED_X86_64.values()):
        insns.append(_insn(_JEQ_K, 0, 1, nr))
        insns.append(_insn(_RET_K, 0, 0, _RET_EPERM))
    ioctl_block = [
        _insn(_LD_W_ABS, 0, 0, _OFF_ARG1_LOW),
        _insn(_JEQ_K, 0, 1, TIOCSTI),
        _insn(_RET_K, 0, 0, _RET_EPERM),
        _insn(_JEQ_K, 0, 1, TIOCLINUX),
        _insn(_RET_K, 0, 0, _RET_EPERM),
        _insn(_RET_K, 0, 0, _RET_ALLOW),
    ]
    insns.append(_insn(_JEQ_K, 0, len(ioctl_block), _NR_IOCTL))
    insns.extend(ioctl_block)
    insns.append(_insn(_RET_K, 0, 0, _RET_ALLOW))
    return b"".join(insns)
