#!/usr/bin/env bash
# tactic: discovery
# technique: T1069.001 Permission Groups Discovery: Local Groups
# behaviour: checks which groups it is in and what sudo would allow it without a password
# as: user
# expect: unusual_switch_user, discovery_burst, recon_breadth
set -u
id -Gn
groups
sudo -n -l 2>&1 || true
cat /etc/sudoers 2>&1 | head -5 || true
ls -la /etc/sudoers.d 2>&1 || true
