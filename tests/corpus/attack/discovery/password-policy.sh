#!/usr/bin/env bash
# tactic: discovery
# technique: T1201 Password Policy Discovery
# behaviour: reads the password policy (login.defs, pam password rules, pwquality) and its own account's aging with chage before guessing passwords
# as: user
# expect: recon_breadth, discovery_burst
set -u
grep -E '^PASS_(MAX|MIN|WARN)' /etc/login.defs > /dev/null || true
cat /etc/pam.d/common-password > /dev/null 2>&1 || true
cat /etc/security/pwquality.conf > /dev/null 2>&1 || true
chage -l "$USER" > /dev/null 2>&1 || true
grep -r pam_faillock /etc/pam.d > /dev/null 2>&1 || true
