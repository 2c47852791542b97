#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1548 Abuse Elevation Control Mechanism (file capabilities)
# behaviour: gives a copy of an interpreter cap_setuid with setcap so any user can become root through it
# as: root
# expect: file_capability
set -u
f=$SNTL_FIX/perl
cp /usr/bin/perl "$f"
setcap cap_setuid+ep "$f"
getcap "$f"
rm -f "$f"
