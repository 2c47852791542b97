#!/usr/bin/env bash
# tactic: persistence
# technique: T1547.006 Boot or Logon Autostart Execution: Kernel Modules and Extensions
# behaviour: tries to load a kernel module (a rootkit stand-in that is not a valid module: the load fails) with insmod and modprobe, and lists it for boot
# as: root
# expect: kernel_module
set -u
f=/etc/modules-load.d/sntl-eval-$SNTL_ID.conf
trap 'rm -f "$f"' EXIT
head -c 512 /dev/urandom > "$SNTL_TMP/diamorphine.ko"
insmod "$SNTL_TMP/diamorphine.ko" 2>&1 || true
modprobe sntl_eval_nonexistent 2>&1 || true
echo diamorphine > "$f"
