#!/usr/bin/env bash
# tactic: execution
# technique: T1059.004 Unix Shell; T1204.002 User Execution: Malicious File
# behaviour: a dropped program in /var/tmp is started through xargs (not by the shell directly), with a name like a system tool
# as: user
# expect: exec_from_writable
set -u
d="/var/tmp/sntl-$SNTL_ID"; mkdir -p "$d"; trap 'rm -rf "$d"' EXIT
cp /bin/true "$d/logrotate"
echo "$d/logrotate" | xargs -I{} sh -c '{} --version' > /dev/null
