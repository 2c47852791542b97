#!/usr/bin/env bash
# tactic: discovery
# technique: T1087.001 Account Discovery: Local Account; T1069.001 Permission Groups Discovery
# behaviour: lists accounts with a login shell and the members of admin groups with awk and getent (no id, no who), then looks at home directories
# as: user
# expect: discovery_burst, recon_breadth
set -u
awk -F: '$7 !~ /(nologin|false)$/ {print $1, $3, $6}' /etc/passwd > /dev/null
getent group sudo adm wheel docker > /dev/null || true
getent passwd | cut -d: -f1 | sort > /dev/null
ls -ld /home/* > /dev/null 2>&1 || true
grep -E '^(sudo|wheel|admin)' /etc/group > /dev/null || true
