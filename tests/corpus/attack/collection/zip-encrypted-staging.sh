#!/usr/bin/env bash
# tactic: collection
# technique: T1560.001 Archive Collected Data: Archive via Utility
# behaviour: packs its own project files into a password-protected zip in /dev/shm before sending
# as: user
# expect: staging
# known-miss: no staging detection yet (an encrypted archive in /dev/shm of the user's own files)
set -u
mkdir -p "$HOME/work"; for i in $(seq 1 12); do echo "design $i" > "$HOME/work/spec-$i.md"; done
zip -q -r -P 'x9!k' "/dev/shm/.$SNTL_ID.zip" "$HOME/work"
rm -f "/dev/shm/.$SNTL_ID.zip"
