#!/usr/bin/env bash
# tactic: persistence
# technique: T1136.001 Create Account: Local Account
# behaviour: adds an account by appending lines to /etc/passwd and /etc/shadow directly (no account tool), then restores both files
# as: root
# expect: account_change
set -u
cp -p /etc/passwd "$SNTL_TMP/passwd"; cp -p /etc/shadow "$SNTL_TMP/shadow"
trap 'cp -p "$SNTL_TMP/passwd" /etc/passwd; cp -p "$SNTL_TMP/shadow" /etc/shadow' EXIT
echo 'sntlevsys:x:0:0:system:/root:/bin/bash' >> /etc/passwd
echo 'sntlevsys:$6$fake$fakefakefake:19000:0:99999:7:::' >> /etc/shadow
