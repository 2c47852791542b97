#!/usr/bin/env bash
# tactic: persistence
# technique: T1098.004 Account Manipulation: SSH Authorized Keys
# behaviour: an insider adds a key to root's authorized_keys with tee (restored afterwards)
# as: root
# expect: persistence
set -u
k=/root/.ssh/authorized_keys
if [ -e "$k" ]; then cp -p "$k" "$SNTL_TMP/ak"; trap 'cp -p "$SNTL_TMP/ak" "$k"' EXIT
elif [ -d /root/.ssh ]; then trap 'rm -f "$k"' EXIT
else mkdir -m 700 /root/.ssh; trap 'rm -rf /root/.ssh' EXIT; fi
echo 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABFAKE backup@host' | tee -a "$k" > /dev/null
