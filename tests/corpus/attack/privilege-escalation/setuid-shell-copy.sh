#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1548.001 Abuse Elevation Control Mechanism: Setuid and Setgid
# behaviour: an insider leaves a set-uid root copy of bash in /var/tmp as a back door for later
# as: root
# expect: setuid_bit
set -u
f=/var/tmp/.$SNTL_ID
trap 'rm -f "$f"' EXIT
cp /bin/bash "$f"
chmod 4755 "$f"
