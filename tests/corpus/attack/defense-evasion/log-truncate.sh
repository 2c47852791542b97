#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1070.002 Indicator Removal: Clear Linux or Mac System Logs
# behaviour: empties log files in place three different ways (truncate, redirection, cp /dev/null) so they stay but say nothing
# as: root
# setup: for i in 1 2 3; do echo "evidence $i" > "/var/log/sntl-ev-$SNTL_ID-$i.log"; done
# teardown: rm -f /var/log/sntl-ev-"$SNTL_ID"-*.log
# expect: log_tampering
set -u
truncate -s 0 "/var/log/sntl-ev-$SNTL_ID-1.log"
: > "/var/log/sntl-ev-$SNTL_ID-2.log"
cp /dev/null "/var/log/sntl-ev-$SNTL_ID-3.log"
