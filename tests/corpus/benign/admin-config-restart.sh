#!/usr/bin/env bash
# workload: admin
# behaviour: an administrator in a root shell (sudo -i) checks a service's state and the network (systemctl, journalctl, ss, ip), edits the service's configuration under /etc with vim (a backup copy first), validates it, restarts the service through its init script and confirms it listens again
# as: user
# setup: echo "$SNTL_USER ALL=(ALL) NOPASSWD: ALL" > "/etc/sudoers.d/sntl-ev-$SNTL_ID" && chmod 440 "/etc/sudoers.d/sntl-ev-$SNTL_ID" && mkdir -p /etc/sntl-ev-api /srv/sntl-ev-api && printf '# api service\nport = 8098\nbind = 127.0.0.1\nworkers = 2\n' > /etc/sntl-ev-api/api.conf && echo ok > /srv/sntl-ev-api/health && printf '#!/bin/sh\n# sntl-ev-api: the team API (a stand-in daemon)\nconf=/etc/sntl-ev-api/api.conf\npidf=/run/sntl-ev-api.pid\nport=$(sed -n "s/^port = //p" $conf)\ncase "$1" in\nstart) cd /srv/sntl-ev-api && nohup python3 -m http.server "$port" --bind 127.0.0.1 >> /var/log/sntl-ev-api.log 2>&1 & echo $! > $pidf ;;\nstop) [ -f $pidf ] && kill "$(cat $pidf)" 2>/dev/null; rm -f $pidf ;;\nrestart) "$0" stop; "$0" start ;;\nstatus) [ -f $pidf ] && kill -0 "$(cat $pidf)" 2>/dev/null && echo running || echo stopped ;;\nesac\n' > /usr/local/sbin/sntl-ev-api && chmod 755 /usr/local/sbin/sntl-ev-api
# teardown: /usr/local/sbin/sntl-ev-api stop; rm -rf "/etc/sudoers.d/sntl-ev-$SNTL_ID" /etc/sntl-ev-api /srv/sntl-ev-api /usr/local/sbin/sntl-ev-api /var/log/sntl-ev-api.log /run/sntl-ev-api.pid
set -u
sudo -n -i bash -s <<'ROOT'
set -u
wait_port() { for _ in $(seq 1 50); do ss -tln | grep -q ":$1 " && return 0; sleep 0.1; done; return 1; }
sntl-ev-api start
wait_port 8098
systemctl --no-pager list-units --type=service --state=running 2>&1 | head -5
systemctl --no-pager status ssh 2>&1 | head -3
journalctl --no-pager -n 10 -p warning 2>&1 | tail -3
ss -tlnp | grep -c LISTEN
ip -br link
ip -4 route show
sntl-ev-api status
cp -p /etc/sntl-ev-api/api.conf /etc/sntl-ev-api/api.conf.bak
vim -es -c '%s/^workers = .*/workers = 4/' -c '%s/^port = .*/port = 8097/' -c 'wq' /etc/sntl-ev-api/api.conf
diff /etc/sntl-ev-api/api.conf.bak /etc/sntl-ev-api/api.conf || true
grep -E '^(port|workers) = [0-9]+$' /etc/sntl-ev-api/api.conf | wc -l
sntl-ev-api restart
wait_port 8097
curl -s http://127.0.0.1:8097/health
tail -n 2 /var/log/sntl-ev-api.log > /dev/null
sntl-ev-api stop
mv /etc/sntl-ev-api/api.conf.bak /etc/sntl-ev-api/api.conf
ROOT
true
