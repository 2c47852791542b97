#!/usr/bin/env bash
# tactic: credential-access
# technique: T1003.008 OS Credential Dumping: /etc/passwd and /etc/shadow
# behaviour: a Python one-liner (not a file tool) reads the hashes of accounts that have a password
# as: root
# expect: credential_access
set -u
python3 -c "print([l.split(':')[0] for l in open('/etc/shadow') if l.split(':')[1] not in ('*','!','!*','')])"
