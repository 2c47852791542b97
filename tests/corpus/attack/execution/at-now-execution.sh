#!/usr/bin/env bash
# tactic: execution
# technique: T1053.002 Scheduled Task/Job: At
# behaviour: uses at to run a command detached from the session (a job queued for the daemon), then removes the job
# as: user
# expect: persistence
set -u
echo "id > $SNTL_TMP/out" | at now + 1 hour 2>&1
for j in $(atq | awk '{print $1}'); do atrm "$j"; done
