#!/usr/bin/env bash
# workload: admin
# behaviour: an administrator (root, after sudo -i) looks at disk usage (df, du, find of big and old logs), dry-runs the system's logrotate configuration, then rotates its own application's logs with a logrotate configuration of its own (compress, keep four), lists and reads the rotated files and removes archives older than a week
# as: root
# setup: mkdir -p /var/log/sntl-ev-app && for i in 1 2 3; do seq 1 2000 | sed "s/^/$(date +%F) worker $i request /" > /var/log/sntl-ev-app/worker$i.log; done && touch -d '10 days ago' /var/log/sntl-ev-app/old.log.5.gz && printf '/var/log/sntl-ev-app/*.log {\n    rotate 4\n    compress\n    missingok\n    notifempty\n    create 0640 root adm\n}\n' > /etc/sntl-ev-app-logrotate.conf
# teardown: rm -rf /var/log/sntl-ev-app /etc/sntl-ev-app-logrotate.conf /var/lib/logrotate/sntl-ev-app.status
set -u
df -h / /var | tail -n +2
du -xsh /var/log 2>/dev/null
du -xh --max-depth=1 /var/log 2>/dev/null | sort -h | tail -5
find /var/log -xdev -type f -size +1M 2>/dev/null | head -5
find /var/log -xdev -name '*.gz' -mtime +7 2>/dev/null | head -5
logrotate -d /etc/logrotate.conf > /dev/null 2>&1 || true
logrotate -v -s /var/lib/logrotate/sntl-ev-app.status -f /etc/sntl-ev-app-logrotate.conf 2>&1 | grep -c rotating
ls -la /var/log/sntl-ev-app
zcat /var/log/sntl-ev-app/worker1.log.1.gz | tail -n 1
find /var/log/sntl-ev-app -name '*.gz' -mtime +7 -print -delete
du -sh /var/log/sntl-ev-app
