#!/usr/bin/env bash
# tactic: persistence
# technique: T1546.004 Event Triggered Execution: Unix Shell Configuration Modification
# behaviour: appends a line to ~/.bashrc that starts a hidden helper at every login
# as: user
# expect: persistence
set -u
cp -p "$HOME/.bashrc" "$SNTL_TMP/rc"
trap 'cp -p "$SNTL_TMP/rc" "$HOME/.bashrc"' EXIT
echo '(nohup $HOME/.cache/.dbus >/dev/null 2>&1 &)' >> "$HOME/.bashrc"
