#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1548.001 Abuse Elevation Control Mechanism: Setuid and Setgid
# behaviour: an insider plants a set-uid root shell in /dev/shm with install -m 4755 (no chmod command)
# as: root
# expect: setuid_bit
set -u
f="/dev/shm/.sntl-$SNTL_ID"
trap 'rm -f "$f"' EXIT
install -m 4755 /bin/bash "$f"
