#!/usr/bin/env bash
# workload: backup
# behaviour: the nightly backup job run by the operator as root: tar czf of every home directory into a dated archive in the backup directory, then a listing and rotation of old archives
# as: root
# teardown: rm -rf /var/backups/sntl-ev-home
set -eu
d=/var/backups/sntl-ev-home
mkdir -p "$d"
stamp=$(date +%Y%m%d-%H%M%S)
tar czf "$d/home-$stamp.tgz" --exclude='*/.cache' --warning=no-file-changed -C / home 2>/dev/null || [ $? -eq 1 ]
tar tzf "$d/home-$stamp.tgz" | wc -l
ls -la "$d"
find "$d" -name 'home-*.tgz' ! -name "home-$stamp.tgz" -delete
du -sh "$d"
