#!/usr/bin/env bash
# tactic: discovery
# technique: T1497.001 Virtualization/Sandbox Evasion: System Checks
# behaviour: checks whether it runs in a container, a VM or a sandbox before doing anything else (cgroups, DMI, CPU flags, init process)
# as: user
# expect: recon_breadth, discovery_burst, targeted_discovery
set -u
cat /proc/1/cgroup
ls -la /.dockerenv 2>/dev/null || true
cat /sys/class/dmi/id/product_name /sys/class/dmi/id/sys_vendor 2>/dev/null || true
grep -c hypervisor /proc/cpuinfo || true
cat /proc/1/comm
grep -E 'Cap(Eff|Bnd)' /proc/self/status
systemd-detect-virt 2>/dev/null || true
