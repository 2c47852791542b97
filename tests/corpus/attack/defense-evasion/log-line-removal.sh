#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1070.002 Indicator Removal: Clear Linux or Mac System Logs
# behaviour: removes only the lines that mention its address from a log (sed -i, which rewrites the file)
# as: root
# setup: printf 'ok line\nFailed password from 203.0.113.7\nok line\n' > "/var/log/sntl-ev-$SNTL_ID.log"
# teardown: rm -f "/var/log/sntl-ev-$SNTL_ID.log"
# expect: log_tampering
set -u
sed -i '/203\.0\.113\.7/d' "/var/log/sntl-ev-$SNTL_ID.log"
