#!/usr/bin/env bash
# tactic: discovery
# technique: T1082 System Information Discovery
# behaviour: profiles hardware, kernel and storage with lscpu, cat /proc/cpuinfo, uname -r, mount and lsblk before choosing a payload
# as: user
# expect: discovery_burst, recon_breadth
set -u
uname -r > /dev/null
lscpu > /dev/null 2>&1 || true
grep -c processor /proc/cpuinfo > /dev/null
mount | head -5 > /dev/null
lsblk > /dev/null 2>&1 || true
cat /proc/meminfo > /dev/null
