#!/usr/bin/env bash
# tactic: persistence
# technique: T1546 Event Triggered Execution (udev rules)
# behaviour: an admin adds a udev rule that runs a program whenever a device appears
# as: root
# expect: persistence
set -u
f=/etc/udev/rules.d/99-sntl-eval-$SNTL_ID.rules
if [ -d /etc/udev/rules.d ]; then trap 'rm -f "$f"' EXIT
elif [ -d /etc/udev ]; then trap 'rm -rf /etc/udev/rules.d' EXIT
else trap 'rm -rf /etc/udev' EXIT; fi
mkdir -p /etc/udev/rules.d
echo 'ACTION=="add", SUBSYSTEM=="net", RUN+="/var/tmp/.u"' > "$f"
