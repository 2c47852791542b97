#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1548.001 Abuse Elevation Control Mechanism: Setuid and Setgid
# behaviour: sets the set-uid and set-gid bits on a copied interpreter with Python's os.chmod (no chmod command)
# as: root
# expect: setuid_bit
set -u
f=$SNTL_FIX/python
cp /usr/bin/python3 "$f"
python3 -c "import os,sys; os.chown(sys.argv[1], 0, 0); os.chmod(sys.argv[1], 0o6755)" "$f"
rm -f "$f"
