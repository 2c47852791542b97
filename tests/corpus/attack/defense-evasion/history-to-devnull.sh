#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1070.003 Indicator Removal: Clear Command History
# behaviour: starts an interactive-style shell with history disabled (HISTFILE=/dev/null, HISTSIZE=0) before working
# as: user
# expect: history_tampering
set -u
HISTFILE=/dev/null HISTSIZE=0 bash -c 'id; uname -a' > /dev/null
env -u HISTFILE HISTFILESIZE=0 bash -c 'hostname' > /dev/null
