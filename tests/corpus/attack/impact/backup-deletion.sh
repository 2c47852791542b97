#!/usr/bin/env bash
# tactic: impact
# technique: T1490 Inhibit System Recovery
# behaviour: deletes the backups under /var/backups before an encryption run (here a set of backup files made for the scenario)
# as: root
# setup: mkdir -p "/var/backups/sntl-ev-$SNTL_ID" && for i in 1 2 3 4 5; do echo db > "/var/backups/sntl-ev-$SNTL_ID/db-$i.sql.gz"; done
# teardown: rm -rf "/var/backups/sntl-ev-$SNTL_ID"
# out-of-scope: no detection for deleting backups is planned (deletes outside /var/log are not findings today)
set -u
find "/var/backups/sntl-ev-$SNTL_ID" -name '*.gz' -delete
