#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1140 Deobfuscate/Decode Files or Information
# behaviour: rebuilds a binary from a hex dump with xxd, makes it executable in the home directory and runs it
# as: user
# expect: decode_and_run, new_binary
set -u
xxd -p /usr/bin/true > "$SNTL_TMP/blob.hex"
mkdir -p "$HOME/.cache"
xxd -r -p "$SNTL_TMP/blob.hex" > "$HOME/.cache/.updater"
chmod +x "$HOME/.cache/.updater"
"$HOME/.cache/.updater"
rm -f "$HOME/.cache/.updater"
