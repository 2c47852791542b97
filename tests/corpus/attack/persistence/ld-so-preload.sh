#!/usr/bin/env bash
# tactic: persistence
# technique: T1574.006 Hijack Execution Flow: Dynamic Linker Hijacking
# behaviour: an admin writes /etc/ld.so.preload (here empty: a real library path would hijack every process on this shared machine), then restores it
# as: root
# expect: loader_hijack, persistence
set -u
f=/etc/ld.so.preload
if [ -e "$f" ]; then cp -p "$f" "$SNTL_TMP/p"; trap 'cp -p "$SNTL_TMP/p" "$f"' EXIT; else trap 'rm -f "$f"' EXIT; fi
printf '' >> "$f"
python3 -c "open('/etc/ld.so.preload', 'a').close()"
