#!/usr/bin/env bash
# tactic: persistence
# technique: T1098 Account Manipulation
# behaviour: an insider quietly adds an ordinary account to the sudo group with usermod, removed afterwards
# as: root
# expect: account_change
set -u
getent group sudo > /dev/null || { echo "no sudo group"; exit 1; }
trap 'gpasswd -d "$SNTL_VICTIM" sudo > /dev/null 2>&1' EXIT
usermod -aG sudo "$SNTL_VICTIM"
