#!/usr/bin/env bash
# tactic: persistence
# technique: T1053.003 Scheduled Task/Job: Cron
# behaviour: a user installs a crontab entry with the crontab command (a reboot-time job), then the scenario removes it
# as: user
# expect: persistence
set -u
trap 'crontab -r 2>/dev/null' EXIT
( crontab -l 2>/dev/null; echo "@reboot $HOME/.cache/.u >/dev/null 2>&1" ) | crontab -
crontab -l
