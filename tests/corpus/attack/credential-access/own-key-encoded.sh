#!/usr/bin/env bash
# tactic: credential-access
# technique: T1552.004 Unsecured Credentials: Private Keys
# behaviour: a compromised account base64-encodes its own SSH private key to smuggle it out (not ssh using it)
# as: user
# setup: install -d -o "$SNTL_USER" -m 700 "/home/$SNTL_USER/.ssh" && printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nFAKEFAKE\n-----END OPENSSH PRIVATE KEY-----\n' > "/home/$SNTL_USER/.ssh/id_ed25519" && chown "$SNTL_USER": "/home/$SNTL_USER/.ssh/id_ed25519" && chmod 600 "/home/$SNTL_USER/.ssh/id_ed25519"
# expect: credential_access
set -u
base64 -w0 "$HOME/.ssh/id_ed25519" > "$SNTL_TMP/k.txt"
