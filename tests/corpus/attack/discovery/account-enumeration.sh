#!/usr/bin/env bash
# tactic: discovery
# technique: T1087.001 Account Discovery: Local Account
# behaviour: lists local accounts, the ones with a login shell, groups with admin rights and who logged in lately
# as: user
# expect: discovery_burst, recon_breadth
set -u
getent passwd | cut -d: -f1,3,7
awk -F: '$3 >= 1000 && $7 !~ /nologin/ {print $1}' /etc/passwd
grep -E '^(sudo|adm|wheel|docker|lxd):' /etc/group
lastlog 2>/dev/null | head -20 || true
w; last -n 10 2>/dev/null || true
