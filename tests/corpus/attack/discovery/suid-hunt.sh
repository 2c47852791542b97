#!/usr/bin/env bash
# tactic: discovery
# technique: T1083 File and Directory Discovery
# behaviour: searches the whole file system for set-uid/set-gid programs and files with capabilities, the first step of a local privilege escalation
# as: user
# expect: recon_breadth, discovery_burst, targeted_discovery
set -u
find / -xdev \( -perm -4000 -o -perm -2000 \) -type f 2>/dev/null | head -100
getcap -r /usr 2>/dev/null | head -20 || true
