#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1548 Abuse Elevation Control Mechanism (file capabilities)
# behaviour: a user finds an interpreter with cap_setuid and uses it to become root (os.setuid(0)) and run a shell
# as: user
# setup: cp "$(readlink -f /usr/bin/python3)" "$SNTL_FIX/python3" && setcap cap_setuid+ep "$SNTL_FIX/python3"
# expect: privilege_escalation
set -u
"$SNTL_FIX/python3" -c 'import os; os.setuid(0); os.execl("/bin/sh", "sh", "-c", "id")'
