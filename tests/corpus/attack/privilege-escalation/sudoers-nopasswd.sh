#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1548.003 Abuse Elevation Control Mechanism: Sudo and Sudo Caching
# behaviour: an insider grants an account password-less sudo in /etc/sudoers.d (removed afterwards)
# as: root
# expect: account_change, auth_config
set -u
f=/etc/sudoers.d/sntl-eval-$SNTL_ID
trap 'rm -f "$f"' EXIT
echo "$SNTL_VICTIM ALL=(ALL) NOPASSWD: ALL" > "$f"
chmod 440 "$f"
