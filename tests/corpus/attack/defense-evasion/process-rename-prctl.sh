#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1036.004 Masquerading: Masquerade Task or Service
# behaviour: a Python implant renames itself (prctl PR_SET_NAME) to look like systemd-journald while it works
# as: user
# expect: masquerade
set -u
python3 - <<'PY'
import ctypes, time
libc = ctypes.CDLL(None)
libc.prctl(15, b"systemd-journal", 0, 0, 0)
open("/proc/self/comm").read()
time.sleep(1)
PY
