#!/usr/bin/env bash
# tactic: persistence
# technique: T1136.001 Create Account: Local Account
# behaviour: an insider creates a second root account (uid 0, non-unique) with useradd, removed at the end
# as: root
# expect: account_change
set -u
n=sntl-ev-bd$$
trap 'userdel -f "$n" 2>/dev/null' EXIT
useradd -o -u 0 -g 0 -M -d /root -s /bin/bash "$n"
