#!/usr/bin/env bash
# workload: admin
# behaviour: an administrator works command by command through sudo (not a root shell): package and file-owner queries, service status, reading auth and system logs, checking listening sockets, restarting its own application daemon and reading its log
# as: user
# setup: echo "$SNTL_USER ALL=(ALL) NOPASSWD: ALL" > "/etc/sudoers.d/sntl-ev-$SNTL_ID" && chmod 440 "/etc/sudoers.d/sntl-ev-$SNTL_ID" && mkdir -p /srv/sntl-ev-web && echo ok > /srv/sntl-ev-web/index.html
# teardown: rm -rf "/etc/sudoers.d/sntl-ev-$SNTL_ID" /srv/sntl-ev-web /var/log/sntl-ev-web.log
set -u
sudo -n -l > /dev/null
sudo -n apt-cache policy cron | head -3
sudo -n dpkg -S /usr/sbin/cron
sudo -n dpkg -L cron | head -5
sudo -n service cron status 2>&1 | head -2 || true
sudo -n tail -n 20 /var/log/auth.log 2>/dev/null | tail -3 || true
sudo -n journalctl -n 30 --no-pager 2>&1 | tail -3 || true
sudo -n grep -i error /var/log/dpkg.log 2>/dev/null | tail -2 || true
sudo -n ss -tlnp | head -5
# The team's small web app: start it, "restart" it after a config change, read its log.
start() { sudo -n sh -c 'cd /srv/sntl-ev-web && nohup python3 -m http.server 8099 --bind 127.0.0.1 >> /var/log/sntl-ev-web.log 2>&1 & echo $!'; }
pid=$(start)
for _ in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:8099/ && break; sleep 0.1; done
sudo -n kill "$pid"
pid=$(start)
for _ in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:8099/ && break; sleep 0.1; done
curl -s http://127.0.0.1:8099/index.html > /dev/null
sudo -n tail -n 5 /var/log/sntl-ev-web.log > /dev/null
sudo -n kill "$pid"
sudo -n du -sh /var/log 2>/dev/null | tail -1
true
