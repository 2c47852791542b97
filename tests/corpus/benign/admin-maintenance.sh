#!/usr/bin/env bash
# workload: admin
# behaviour: an administrator's routine through sudo -i: package queries, service and journal checks, edits its own application config under /etc and "restarts" the service (systemctl status)
# as: user
# setup: echo "$SNTL_USER ALL=(ALL) NOPASSWD: ALL" > "/etc/sudoers.d/sntl-ev-$SNTL_ID" && chmod 440 "/etc/sudoers.d/sntl-ev-$SNTL_ID" && mkdir -p /etc/sntl-ev-app && printf 'workers = 4\nlog_level = info\n' > /etc/sntl-ev-app/app.conf
# teardown: rm -rf "/etc/sudoers.d/sntl-ev-$SNTL_ID" /etc/sntl-ev-app
set -u
sudo -n -i bash -s <<'ROOT'
set -u
dpkg -l | grep -c '^ii'
dpkg -s openssl | grep -E '^(Status|Version)'
apt-cache policy openssl | head -3
systemctl list-units --type=service --no-pager 2>&1 | head -5
systemctl status cron --no-pager 2>&1 | head -3
journalctl -n 20 --no-pager 2>&1 | tail -3
cp /etc/sntl-ev-app/app.conf /etc/sntl-ev-app/app.conf.bak
sed -i 's/^workers = .*/workers = 8/' /etc/sntl-ev-app/app.conf
grep workers /etc/sntl-ev-app/app.conf
systemctl status sntl-ev-app --no-pager 2>&1 | head -2
df -h / | tail -1
free -m | head -2
ls -la /var/log | head -5
tail -n 3 /var/log/dpkg.log 2>/dev/null
ROOT
sudo -n apt-cache search --names-only '^openssl$'
true
