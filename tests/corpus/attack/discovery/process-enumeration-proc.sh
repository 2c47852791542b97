#!/usr/bin/env bash
# tactic: discovery
# technique: T1057 Process Discovery
# behaviour: walks /proc itself (no ps) to list every process's owner and command line, looking for security tools and interesting daemons
# as: user
# expect: recon_breadth, discovery_burst, targeted_discovery
set -u
for p in /proc/[0-9]*; do
  cmd=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) || continue
  owner=$(stat -c %U "$p" 2>/dev/null) || continue
  echo "${p#/proc/} $owner ${cmd:0:80}"
done | grep -Ei 'sentinel|auditd|falco|osquery|edr|ssh|sql|root' | head -50
