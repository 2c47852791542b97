#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1222.002 File and Directory Permissions Modification: Linux
# behaviour: makes its dropped file immutable (chattr +i) and world-writable-proof so cleanup fails, then undoes it
# as: root
# out-of-scope: file attribute changes (FS_IOC_SETFLAGS ioctl) are not among the captured syscalls; no detection is planned for them
set -u
f=$SNTL_FIX/keep
echo x > "$f"
chattr +i "$f" 2>/dev/null || true
lsattr "$f" 2>/dev/null || true
chattr -i "$f" 2>/dev/null || true
rm -f "$f"
