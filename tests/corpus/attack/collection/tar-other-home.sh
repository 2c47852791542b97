#!/usr/bin/env bash
# tactic: collection
# technique: T1560.001 Archive Collected Data: Archive via Utility
# behaviour: archives another user's home directory into a hidden file in /var/tmp
# as: root
# expect: mass_read, staging
set -u
f=/var/tmp/.cache-$SNTL_ID.tgz
trap 'rm -f "$f"' EXIT
tar czf "$f" -C /home "$(basename "$SNTL_VICTIM_HOME")"
