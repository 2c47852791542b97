#!/usr/bin/env bash
# workload: troubleshooting
# behaviour: someone looks into "the machine is slow": processes, sockets, top, open files, disk, memory, kernel, addresses, OS release
# as: user
set -u
uptime
ps aux --sort=-%cpu | head -10
ss -tunap 2>/dev/null | head -10
top -b -n1 | head -15
lsof -p $$ 2>/dev/null | head -10
df -h
free -m
uname -a
ip addr
cat /etc/os-release
vmstat 1 2 2>/dev/null || true
dmesg 2>/dev/null | tail -5 || true
true
