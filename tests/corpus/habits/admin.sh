#!/usr/bin/env bash
# An administrator's routine as root (after `sudo -i`), learned while `sentinel learn` runs:
# the baseline of a root scenario's login user. Not a scenario.
set -u
cd /root
uptime > /dev/null
df -h > /dev/null
free -m > /dev/null
ps aux > /dev/null
ss -tln > /dev/null
ip -br addr > /dev/null
journalctl -n 20 --no-pager > /dev/null 2>&1
systemctl status cron --no-pager > /dev/null 2>&1
dpkg -l | grep -c '^ii' > /dev/null
apt-cache policy bash > /dev/null
ls -la /etc/cron.d /var/log > /dev/null
tail -n 5 /var/log/dpkg.log > /dev/null 2>&1
cat /etc/hostname /etc/os-release > /dev/null
id > /dev/null
du -sh /var/cache/apt > /dev/null 2>&1
true
