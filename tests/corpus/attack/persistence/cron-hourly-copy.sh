#!/usr/bin/env bash
# tactic: persistence
# technique: T1053.003 Scheduled Task/Job: Cron
# behaviour: an admin copies a script into /etc/cron.hourly with cp (a run-parts directory, no crontab line at all)
# as: root
# expect: persistence
set -u
f="/etc/cron.hourly/sntl-eval-$SNTL_ID"
trap 'rm -f "$f"' EXIT
printf '#!/bin/sh\n/var/tmp/.u >/dev/null 2>&1\n' > "$SNTL_TMP/u"
cp "$SNTL_TMP/u" "$f" && chmod 755 "$f"
