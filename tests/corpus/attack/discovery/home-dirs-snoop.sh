#!/usr/bin/env bash
# tactic: discovery
# technique: T1083 File and Directory Discovery
# behaviour: lists every home directory and hunts for interesting file names (keys, configs, backups, databases)
# as: user
# expect: recon_breadth, discovery_burst, targeted_discovery
set -u
ls -la /home
find /home /opt /srv /var/backups -maxdepth 4 \( -name '*.kdbx' -o -name '*.pem' -o -name 'id_*' -o -name '*.bak' -o -name '*.sql' -o -name '.env' -o -name '*.conf' \) 2>/dev/null | head -50
ls -la /var/backups /opt 2>&1
