#!/usr/bin/env bash
# tactic: credential-access
# technique: T1552.001 Unsecured Credentials: Credentials In Files
# behaviour: find -exec cat over every home for stored tokens and passwords: .git-credentials, .pgpass, .netrc
# as: root
# expect: credential_access
set -u
find /home -maxdepth 2 \( -name .git-credentials -o -name .pgpass -o -name .netrc \) -exec cat {} + > "$SNTL_TMP/t.txt" 2>/dev/null || true
