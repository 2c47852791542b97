#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1548.003 Abuse Elevation Control Mechanism: Sudo and Sudo Caching
# behaviour: edits /etc/sudoers itself with sed to disable authentication for everyone, then restores it
# as: root
# expect: account_change, auth_config
set -u
cp -p /etc/sudoers "$SNTL_TMP/sudoers"
trap 'cp -p "$SNTL_TMP/sudoers" /etc/sudoers' EXIT
sed -i '$ a Defaults !authenticate' /etc/sudoers
