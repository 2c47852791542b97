#!/usr/bin/env bash
# tactic: credential-access
# technique: T1003.008 OS Credential Dumping: /etc/passwd and /etc/shadow
# behaviour: copies the password hashes with dd (not cat or cp) into a hidden file in /dev/shm
# as: root
# expect: credential_access
set -u
trap 'rm -f /dev/shm/.sntl-$SNTL_ID' EXIT
dd if=/etc/shadow of="/dev/shm/.sntl-$SNTL_ID" bs=4k status=none
