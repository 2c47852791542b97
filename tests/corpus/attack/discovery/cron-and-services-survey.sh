#!/usr/bin/env bash
# tactic: discovery
# technique: T1007 System Service Discovery
# behaviour: surveys scheduled jobs, services and unit files for something to hijack
# as: user
# expect: discovery_burst, recon_breadth
set -u
cat /etc/crontab 2>/dev/null
ls -la /etc/cron.d /etc/cron.daily /var/spool/cron 2>&1
ls /etc/systemd/system /lib/systemd/system | head -50
systemctl list-units --type=service --no-pager 2>&1 | head -20 || true
ls -la /etc/init.d
