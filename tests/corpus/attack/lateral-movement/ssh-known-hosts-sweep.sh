#!/usr/bin/env bash
# tactic: lateral-movement
# technique: T1021.004 Remote Services: SSH
# behaviour: reads the user's ssh config and known_hosts for targets and tries each with the user's own keys
# as: user
# needs: remote
# expect: new_destination
set -u
mkdir -p "$HOME/.ssh"; printf '%s ssh-ed25519 AAAAFAKE\n' "$SNTL_REMOTE" > "$HOME/.ssh/known_hosts"
for h in $(awk '{print $1}' "$HOME/.ssh/known_hosts" | tr ',' ' '); do
  timeout 2 ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=2 "$h" hostname 2>/dev/null || true
done
rm -f "$HOME/.ssh/known_hosts"
