#!/usr/bin/env bash
# tactic: credential-access
# technique: T1552.001 Unsecured Credentials: Credentials In Files
# behaviour: base64-encodes another user's AWS keys and kubeconfig with openssl, one file at a time, into a hidden note
# as: root
# expect: credential_access
set -u
for f in "$SNTL_VICTIM_HOME/.aws/credentials" "$SNTL_VICTIM_HOME/.kube/config"; do
  openssl base64 -in "$f" >> "$SNTL_TMP/.n"
done
