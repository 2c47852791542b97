#!/usr/bin/env bash
# tactic: discovery
# technique: T1518 Software Discovery
# behaviour: inventories installed packages, compilers, interpreters and transfer tools an attacker can live off
# as: user
# expect: discovery_burst, recon_breadth
# known-miss: dpkg -l, gcc --version, python3 -V are not in the discovery list; recon_breadth does not exist yet
set -u
dpkg -l | wc -l
for t in gcc cc python3 perl ruby nc ncat socat curl wget gdb docker kubectl; do command -v $t; done
gcc --version | head -1
python3 -V
