#!/usr/bin/env bash
# tactic: persistence
# technique: T1543.002 Create or Modify System Process: Systemd Service
# behaviour: a user installs a systemd user service that restarts its implant forever, and enables it by symlink
# as: user
# expect: persistence
set -u
d="$HOME/.config/systemd/user"
trap 'rm -rf "$HOME/.config/systemd"' EXIT
mkdir -p "$d/default.target.wants"
printf '[Unit]\nDescription=D-Bus session helper\n[Service]\nExecStart=%s/.cache/.dbus\nRestart=always\n[Install]\nWantedBy=default.target\n' "$HOME" > "$d/dbus-helper.service"
ln -s "$d/dbus-helper.service" "$d/default.target.wants/dbus-helper.service"
