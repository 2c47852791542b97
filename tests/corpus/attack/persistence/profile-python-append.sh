#!/usr/bin/env bash
# tactic: persistence
# technique: T1546.004 Event Triggered Execution: Unix Shell Configuration Modification
# behaviour: Python (not a shell redirect) appends a line to ~/.profile that starts a helper from ~/.cache at every login
# as: user
# expect: persistence
set -u
cp -p "$HOME/.profile" "$SNTL_TMP/p" 2>/dev/null || : > "$SNTL_TMP/p"
trap 'cp -p "$SNTL_TMP/p" "$HOME/.profile"' EXIT
python3 -c 'import os; open(os.path.expanduser("~/.profile"), "a").write("\n[ -x ~/.cache/.fc ] && ~/.cache/.fc &\n")'
