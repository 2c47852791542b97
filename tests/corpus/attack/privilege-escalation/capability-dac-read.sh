#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1548 Abuse Elevation Control Mechanism (file capabilities)
# behaviour: gives a copy of tar cap_dac_read_search so any user can read every file (shadow, keys) through it
# as: root
# expect: file_capability
set -u
d="/var/tmp/sntl-$SNTL_ID"; mkdir -p "$d"; trap 'rm -rf "$d"' EXIT
cp /usr/bin/tar "$d/tar"
setcap 'cap_dac_read_search=ep' "$d/tar"
