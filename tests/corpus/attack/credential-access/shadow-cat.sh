#!/usr/bin/env bash
# tactic: credential-access
# technique: T1003.008 OS Credential Dumping: /etc/passwd and /etc/shadow
# behaviour: an admin reads the password hashes with cat, ready to crack offline
# as: root
# expect: credential_access
set -u
cat /etc/shadow > /dev/null
