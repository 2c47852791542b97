#!/usr/bin/env bash
# tactic: persistence
# technique: T1098 Account Manipulation
# behaviour: sets a known password on another account with chpasswd so it can log in as that user later (the throw-away victim)
# as: root
# expect: account_change
set -u
cp -p /etc/shadow "$SNTL_TMP/shadow"
trap 'cp -p "$SNTL_TMP/shadow" /etc/shadow' EXIT
echo "$SNTL_VICTIM:Spring2024!" | chpasswd
passwd -d "$SNTL_VICTIM" > /dev/null
