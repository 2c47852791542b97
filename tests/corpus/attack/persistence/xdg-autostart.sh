#!/usr/bin/env bash
# tactic: persistence
# technique: T1547.013 Boot or Logon Autostart Execution: XDG Autostart Entries
# behaviour: adds a desktop autostart entry that runs a hidden program at graphical login
# as: user
# expect: persistence
set -u
d="$HOME/.config/autostart"
trap 'rm -rf "$d"' EXIT
mkdir -p "$d"
printf '[Desktop Entry]\nType=Application\nName=Updates\nExec=%s/.cache/.upd\nHidden=true\n' "$HOME" > "$d/updates.desktop"
