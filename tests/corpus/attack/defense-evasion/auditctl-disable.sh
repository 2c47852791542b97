#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1562.012 Impair Defenses: Disable or Modify Linux Audit System
# behaviour: switches kernel auditing off with auditctl -e 0 (the state is put back at once, this is a shared test host)
# as: root
# expect: watcher_silenced
set -u
old=$(auditctl -s 2>/dev/null | awk '/^enabled/ {print $2}')
trap 'auditctl -e "${old:-1}" > /dev/null 2>&1 || true' EXIT
auditctl -e 0 > /dev/null 2>&1 || true
