#!/usr/bin/env bash
# workload: admin
# behaviour: an administrator reviews accounts after a colleague leaves: from a root shell (sudo -i) it lists login accounts, checks password status and ageing with passwd -S and chage -l, group memberships, last logins and who is on, its own sudo rights, and the password database's consistency with pwck and grpck in read-only mode
# as: user
# setup: echo "$SNTL_USER ALL=(ALL) NOPASSWD: ALL" > "/etc/sudoers.d/sntl-ev-$SNTL_ID" && chmod 440 "/etc/sudoers.d/sntl-ev-$SNTL_ID"
# teardown: rm -f "/etc/sudoers.d/sntl-ev-$SNTL_ID"
set -u
sudo -n -l > /dev/null
sudo -n -i SNTL_USER="$SNTL_USER" bash -s <<'ROOT'
set -u
getent passwd | awk -F: '$3 >= 1000 && $7 !~ /nologin|false/ {print $1}' | wc -l
passwd -S "$SNTL_USER"
passwd -S root
chage -l "$SNTL_USER" | head -3
chage -l root > /dev/null
id "$SNTL_USER"
groups "$SNTL_USER"
getent group sudo adm | cut -d: -f1,4
last -n 5 2>/dev/null | head -3 || true
lastlog -u root 2>/dev/null | tail -1 || true
who | wc -l
w -h | wc -l
pwck -r -q > /dev/null 2>&1 || true
grpck -r > /dev/null 2>&1 || true
grep -c '' /etc/passwd
ROOT
true
