#!/usr/bin/env bash
# tactic: collection
# technique: T1560.001 Archive Collected Data: Archive via Utility
# behaviour: streams an archive of another user's documents through openssl encryption into a hidden file
# as: root
# expect: mass_read, staging
set -u
f=/var/tmp/.d-$SNTL_ID
trap 'rm -f "$f"' EXIT
tar cf - -C "$SNTL_VICTIM_HOME" docs | openssl enc -aes-256-cbc -pbkdf2 -k 'p4ss' -out "$f"
