#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1070.006 Indicator Removal: Timestomp
# behaviour: drops a tool in ~/.local/bin and copies the timestamps of /bin/ls onto it so it looks as old as the system
# as: user
# expect: timestomp
set -u
mkdir -p "$HOME/.local/bin"
cp /usr/bin/true "$HOME/.local/bin/dbus-helper"
touch -r /bin/ls "$HOME/.local/bin/dbus-helper"
touch -d '2021-03-04 05:06' "$HOME/.local/bin"
rm -f "$HOME/.local/bin/dbus-helper"
