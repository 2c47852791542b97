#!/usr/bin/env bash
# tactic: discovery
# technique: T1082 System Information Discovery
# behaviour: one Python process profiles the host without running a single discovery command: users, groups, interfaces, kernel, mounts, processes
# as: user
# expect: recon_breadth
set -u
python3 - <<'PY'
import os, pwd, grp, socket, platform
print(platform.uname())
print([p.pw_name for p in pwd.getpwall() if p.pw_uid >= 1000])
print([g.gr_name for g in grp.getgrall() if g.gr_mem])
print(socket.gethostname(), socket.if_nameindex())
for f in ("/etc/os-release", "/proc/mounts", "/etc/hosts", "/etc/resolv.conf", "/proc/net/route"):
    open(f).read()
print(len([p for p in os.listdir("/proc") if p.isdigit()]), "processes")
PY
