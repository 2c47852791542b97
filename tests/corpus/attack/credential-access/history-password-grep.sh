#!/usr/bin/env bash
# tactic: credential-access
# technique: T1552.003 Unsecured Credentials: Bash History
# behaviour: greps every user's shell history for passwords typed on command lines
# as: root
# expect: credential_access, mass_read
set -u
grep -HiE 'pass|-p[^ ]|secret|token|key' /home/*/.bash_history /root/.bash_history 2>/dev/null || true
