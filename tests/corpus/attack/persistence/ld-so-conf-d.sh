#!/usr/bin/env bash
# tactic: persistence
# technique: T1574.006 Hijack Execution Flow: Dynamic Linker Hijacking
# behaviour: an admin adds a library search directory under /etc/ld.so.conf.d pointing at a writable place (not applied: no ldconfig)
# as: root
# expect: loader_hijack, persistence
set -u
f=/etc/ld.so.conf.d/00-sntl-eval-$SNTL_ID.conf
trap 'rm -f "$f"' EXIT
echo /var/tmp/.lib > "$f"
