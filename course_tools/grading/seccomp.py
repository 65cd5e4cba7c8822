"""Every lesson: the system calls a graded job may not make, as a classic BPF program for `bwrap --seccomp`.

Blocked: the kernel keyrings (`add_key`, `request_key`, `keyctl`: a key outlives the job and another job can
read it), new namespaces (`unshare`, `setns`, and `clone` with a namespace flag; `clone3`, whose flags the
filter cannot read, answers ENOSYS so the C library falls back to `clone`), and every call of another ABI (x32,
32-bit), which would otherwise go round the numbers below. Everything else is allowed: the rest of the sandbox
is bubblewrap's namespaces, mounts and limits.
"""

from __future__ import annotations

import platform
import struct

_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
EPERM, ENOSYS = 1, 38
NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET

# (audit arch, x32 bit or None, {call: number}) per machine
_TABLES = {
    "x86_64": (
        0xC000003E,
        0x40000000,
        {"add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272, "setns": 308, "clone": 56, "clone3": 435},
    ),
    "aarch64": (
        0xC00000B7,
        None,
        {"add_key": 217, "request_key": 218, "keyctl": 219, "unshare": 97, "setns": 268, "clone": 220, "clone3": 435},
    ),
}
BLOCKED = ("add_key", "request_key", "keyctl", "unshare", "setns")


def program(machine: str | None = None) -> bytes | None:
    """The filter for this machine (struct sock_filter[]), or None where the course has no table for it."""
    table = _TABLES.get(machine or platform.machine())
    if table is None:
        return None
    arch, x32, numbers = table
    # Instructions as (code, jump-if-true label, jump-if-false label, k); labels resolved below.
    code: list[tuple[int, str | None, str | None, int]] = [
        (_LD_ABS, None, None, 4),  # seccomp_data.arch
        (_JEQ, None, "enosys", arch),
        (_LD_ABS, None, None, 0),  # seccomp_data.nr
    ]
    if x32 is not None:
        code.append((_JGE, "enosys", None, x32))
    code += [(_JEQ, "deny", None, numbers[name]) for name in BLOCKED]
    code += [
        (_JEQ, "enosys", None, numbers["clone3"]),
        (_JEQ, None, "allow", numbers["clone"]),
        (_LD_ABS, None, None, 16),  # clone: the low half of its first argument, the flags
        (_JSET, "deny", "allow", NAMESPACE_FLAGS),
    ]
    labels = {"allow": len(code), "deny": len(code) + 1, "enosys": len(code) + 2}
    code += [(_RET, None, None, _ALLOW), (_RET, None, None, _ERRNO | EPERM), (_RET, None, None, _ERRNO | ENOSYS)]
    out = b""
    for at, (op, true, false, k) in enumerate(code):
        jt = labels[true] - at - 1 if true else 0
        jf = labels[false] - at - 1 if false else 0
        if not (0 <= jt < 256 and 0 <= jf < 256):
            raise ValueError("a jump in the seccomp program is out of range")
        out += struct.pack("<HBBI", op, jt, jf, k)
    return out
