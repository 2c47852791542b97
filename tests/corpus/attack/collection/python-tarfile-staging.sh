#!/usr/bin/env bash
# tactic: collection
# technique: T1560.002 Archive Collected Data: Archive via Library
# behaviour: Python's tarfile module packs another user's documents and project secrets into a compressed archive in /var/tmp (no tar command)
# as: root
# expect: mass_read, staging
set -u
f="/var/tmp/.sntl-$SNTL_ID.tgz"; trap 'rm -f "$f"' EXIT
python3 - "$SNTL_VICTIM_HOME" "$f" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[2], "w:gz") as t:
    for sub in ("docs", "projects"):
        t.add(f"{sys.argv[1]}/{sub}", arcname=sub)
PY
