#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1070.002 Indicator Removal: Clear Linux or Mac System Logs
# behaviour: deletes a log file that recorded its activity
# as: root
# setup: printf 'Nov 29 sshd[1]: Accepted password for root from 203.0.113.7\n' > "/var/log/sntl-ev-$SNTL_ID.log"
# teardown: rm -f "/var/log/sntl-ev-$SNTL_ID.log"
# expect: log_tampering
set -u
rm -f "/var/log/sntl-ev-$SNTL_ID.log"
