#!/usr/bin/env bash
# tactic: persistence
# technique: T1053.003 Scheduled Task/Job: Cron
# behaviour: appends a job to /etc/crontab itself with sed -i (no cron.d file, no crontab tool), then restores it
# as: root
# expect: persistence
set -u
cp -p /etc/crontab "$SNTL_TMP/crontab"
trap 'cat "$SNTL_TMP/crontab" > /etc/crontab' EXIT
sed -i '$a */5 * * * * root /var/tmp/.upd >/dev/null 2>&1' /etc/crontab
