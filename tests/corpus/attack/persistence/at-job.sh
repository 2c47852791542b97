#!/usr/bin/env bash
# tactic: persistence
# technique: T1053.002 Scheduled Task/Job: At
# behaviour: schedules a one-off job with at for tonight, then the scenario removes it
# as: user
# expect: persistence
set -u
echo "$HOME/.cache/.u" | at now + 10 hours 2>&1
for j in $(atq | awk '{print $1}'); do atrm "$j"; done
