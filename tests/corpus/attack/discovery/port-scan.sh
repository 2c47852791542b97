#!/usr/bin/env bash
# tactic: discovery
# technique: T1046 Network Service Discovery
# behaviour: scans the first thousand TCP ports of a neighbouring host with bash's /dev/tcp (no scanner installed)
# as: user
# needs: remote
# expect: recon_breadth, new_destination
set -u
for port in $(seq 1 1024); do
  (exec 3<>/dev/tcp/$SNTL_REMOTE/$port) 2>/dev/null && echo "open $port"
done
true
