#!/usr/bin/env bash
# tactic: collection
# technique: T1005 Data from Local System
# behaviour: gathers every user's shell history, ssh config and mail into one file
# as: root
# expect: mass_read, credential_access
set -u
for h in /home/*; do
  cat "$h/.bash_history" "$h/.ssh/config" "$h/.ssh/known_hosts" 2>/dev/null
done > "$SNTL_TMP/all.txt"
cat /var/mail/* >> "$SNTL_TMP/all.txt" 2>/dev/null || true
