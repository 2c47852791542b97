#!/usr/bin/env bash
# tactic: discovery
# technique: T1518 Software Discovery
# behaviour: inventories installed packages, compilers, interpreters and transfer tools an attacker can live off
# as: user
# expect: discovery_burst, recon_breadth
# known-miss: only three commands are discovery entries (dpkg -l, gcc --version, python3 -V; `command -v` is a shell builtin, no exec), one short of discovery_burst's 4, and all explore one area (software) for recon_breadth
set -u
dpkg -l | wc -l
for t in gcc cc python3 perl ruby nc ncat socat curl wget gdb docker kubectl; do command -v $t; done
gcc --version | head -1
python3 -V
