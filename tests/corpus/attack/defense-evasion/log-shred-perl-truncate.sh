#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1070.002 Indicator Removal: Clear Linux or Mac System Logs
# behaviour: wipes logs with tools other than rm and truncate: shred over find -exec, and Perl's truncate()
# as: root
# setup: for i in 1 2; do echo "evidence $i" > "/var/log/sntl-ev-$SNTL_ID-$i.log"; done
# teardown: rm -f /var/log/sntl-ev-"$SNTL_ID"-*.log
# expect: log_tampering
set -u
find /var/log -maxdepth 1 -name "sntl-ev-$SNTL_ID-1.log" -exec shred -n 1 -u {} \;
perl -e 'truncate($ARGV[0], 0) or die "$!"' "/var/log/sntl-ev-$SNTL_ID-2.log"
