#!/usr/bin/env bash
# tactic: collection
# technique: T1005 Data from Local System
# behaviour: a Python collector walks other users' homes and packs every small file into one zip
# as: root
# expect: mass_read, staging
set -u
python3 - "$SNTL_VICTIM_HOME" "$SNTL_TMP/c.zip" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[2], "w") as z:
    for root, dirs, files in os.walk(sys.argv[1]):
        for f in files:
            p = os.path.join(root, f)
            if os.path.getsize(p) < 1 << 20:
                z.write(p)
PY
