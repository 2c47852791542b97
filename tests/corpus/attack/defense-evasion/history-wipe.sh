#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1070.003 Indicator Removal: Clear Command History
# behaviour: wipes its own shell history: truncates the file, then points it at /dev/null for good
# as: user
# setup: printf 'ls\nwget http://x/y\n' > "/home/$SNTL_USER/.bash_history" && chown "$SNTL_USER": "/home/$SNTL_USER/.bash_history"
# expect: history_tampering
set -u
: > "$HOME/.bash_history"
rm -f "$HOME/.bash_history"
ln -s /dev/null "$HOME/.bash_history"
rm -f "$HOME/.bash_history"
