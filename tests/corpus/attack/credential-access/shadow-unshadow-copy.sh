#!/usr/bin/env bash
# tactic: credential-access
# technique: T1003.008 OS Credential Dumping: /etc/passwd and /etc/shadow
# behaviour: copies passwd and shadow next to each other (unshadow style) in a hidden directory for cracking
# as: root
# expect: credential_access, staging
set -u
d="$SNTL_TMP/.c"; mkdir -p "$d"
cp /etc/passwd "$d/p"; cp /etc/shadow "$d/s"
join -t: -j1 <(sort "$d/p") <(sort "$d/s") | awk -F: '$8 ~ /^\$/ {print $1":"$8}' > "$d/hashes" || true
rm -rf "$d"
