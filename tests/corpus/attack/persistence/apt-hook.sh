#!/usr/bin/env bash
# tactic: persistence
# technique: T1546 Event Triggered Execution (package manager hooks)
# behaviour: an admin adds an APT hook that runs a command (as root) before every apt update
# as: root
# expect: persistence
set -u
f="/etc/apt/apt.conf.d/99sntl-eval-$SNTL_ID"
trap 'rm -f "$f"' EXIT
echo 'APT::Update::Pre-Invoke {"/bin/sh -c \"(/var/tmp/.a &) >/dev/null 2>&1\"";};' > "$f"
