#!/usr/bin/env bash
# tactic: persistence
# technique: T1053.006 Scheduled Task/Job: Systemd Timers
# behaviour: an admin adds a timer and its service with python (not a shell redirect)
# as: root
# expect: persistence
set -u
b=/etc/systemd/system/sntl-eval-$SNTL_ID
trap 'rm -f "$b.timer" "$b.service"' EXIT
python3 - "$b" <<'PY'
import sys
b = sys.argv[1]
open(b + ".service", "w").write("[Service]\nExecStart=/usr/bin/python3 -c 'import os'\n")
open(b + ".timer", "w").write("[Timer]\nOnBootSec=5min\nOnUnitActiveSec=1h\n[Install]\nWantedBy=timers.target\n")
PY
