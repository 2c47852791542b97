#!/usr/bin/env bash
# tactic: credential-access
# technique: T1003.008 OS Credential Dumping: /etc/passwd and /etc/shadow; T1036.003 Rename System Utilities
# behaviour: copies head to a harmless-sounding name in /var/tmp and reads the password hashes with it
# as: root
# expect: credential_access, exec_from_writable
set -u
d="/var/tmp/sntl-$SNTL_ID"; mkdir -p "$d"; trap 'rm -rf "$d"' EXIT
cp /usr/bin/head "$d/sysinfo"
"$d/sysinfo" -n 50 /etc/shadow > /dev/null
