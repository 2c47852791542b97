#!/usr/bin/env bash
# tactic: collection
# technique: T1119 Automated Collection; T1074.001 Data Staged: Local Data Staging
# behaviour: find -exec cp copies other users' documents one file per cp process into a hidden staging directory in /dev/shm
# as: root
# expect: mass_read, staging
set -u
d="/dev/shm/.sntl-$SNTL_ID"; mkdir -p "$d"; trap 'rm -rf "$d"' EXIT
find /home -path '*/docs/*' \( -name '*.txt' -o -name '*.csv' \) -exec cp {} "$d/" \; 2>/dev/null
