#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1070.006 Indicator Removal: Timestomp
# behaviour: plants a helper in /usr/local/sbin and backdates it to an old date with touch -t (an explicit date, not a reference file)
# as: root
# expect: timestomp
set -u
f="/usr/local/sbin/sntl-eval-$SNTL_ID"
trap 'rm -f "$f"' EXIT
cp /bin/true "$f"
touch -t 201901011200 "$f"
