#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1070.003 Indicator Removal: Clear Command History
# behaviour: an admin shreds another user's history file so the session cannot be reconstructed
# as: root
# expect: history_tampering
set -u
cp -p "$SNTL_VICTIM_HOME/.bash_history" "$SNTL_TMP/keep"
shred -u "$SNTL_VICTIM_HOME/.bash_history"
cp -p "$SNTL_TMP/keep" "$SNTL_VICTIM_HOME/.bash_history"
