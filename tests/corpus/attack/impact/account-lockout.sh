#!/usr/bin/env bash
# tactic: impact
# technique: T1531 Account Access Removal
# behaviour: locks another user's account and expires it so they cannot log in (the throw-away victim; unlocked afterwards)
# as: root
# expect: account_change
set -u
trap 'usermod -U -e "" "$SNTL_VICTIM" 2>/dev/null' EXIT
passwd -l "$SNTL_VICTIM"
usermod -e 1 "$SNTL_VICTIM"
