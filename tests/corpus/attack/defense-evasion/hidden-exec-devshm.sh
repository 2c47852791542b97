#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1564.001 Hide Artifacts: Hidden Files and Directories
# behaviour: runs a tool from a dot-directory in /dev/shm (memory-backed, world-writable, rarely looked at)
# as: user
# expect: exec_from_writable
set -u
d=/dev/shm/.$SNTL_ID; mkdir -p "$d"
cp /usr/bin/sleep "$d/.s"
"$d/.s" 0.2
rm -rf "$d"
