#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1548 Abuse Elevation Control Mechanism (file capabilities)
# behaviour: the same capability written as the raw security.capability extended attribute with setfattr, not setcap
# as: root
# expect: file_capability
set -u
f=$SNTL_FIX/tar
cp /usr/bin/tar "$f"
setcap cap_dac_read_search+ep "$f"
v=$(getfattr -n security.capability -e hex --only-values "$f" 2>/dev/null | xxd -p) || true
setfattr -x security.capability "$f"
setfattr -n security.capability -v 0x0100000204000000000000000000000000000000 "$f"
getcap "$f"
rm -f "$f"
