#!/usr/bin/env bash
# tactic: persistence
# technique: T1543.002 Create or Modify System Process: Systemd Service
# behaviour: adds a drop-in override to an existing system service (cron) so that it also starts the attacker's program (not a new unit)
# as: root
# expect: persistence
set -u
d=/etc/systemd/system/cron.service.d
had=0; [ -d "$d" ] && had=1
trap 'rm -f "$d/sntl-eval-$SNTL_ID.conf"; [ $had = 1 ] || rmdir "$d" 2>/dev/null' EXIT
mkdir -p "$d"
cat > "$d/sntl-eval-$SNTL_ID.conf" <<'UNIT'
[Service]
ExecStartPost=/bin/sh -c '/var/tmp/.cron-helper &'
UNIT
