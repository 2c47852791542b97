#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1070.004 Indicator Removal: File Deletion
# behaviour: starts its implant from /var/tmp and deletes the file while the process keeps running
# as: user
# expect: exec_from_writable
set -u
f=/var/tmp/.$SNTL_ID
cp /usr/bin/sleep "$f"
"$f" 2 &
pid=$!
# Delete only once the child runs the file (the fork may not have reached exec yet).
for _ in $(seq 1 500); do
  [ "$(readlink /proc/$pid/exe 2>/dev/null)" = "$f" ] && break
  sleep 0.01
done
rm -f "$f"
ls -l /proc/$pid/exe
wait $pid
