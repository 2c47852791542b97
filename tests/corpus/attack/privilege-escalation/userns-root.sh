#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1068 Exploitation for Privilege Escalation (user namespace as the usual first step)
# behaviour: an ordinary user makes itself root inside a new user and mount namespace and mounts there, as kernel exploits commonly begin
# as: user
# expect: privilege_escalation
set -u
unshare -Urm sh -c 'id; mount -t tmpfs none /mnt && touch /mnt/x && umount /mnt' || true
