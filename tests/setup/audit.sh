#!/usr/bin/env bash
# Packages the audit end-to-end tests need: auditd (the tests start and stop it themselves),
# sudo (to cause USER_CMD records) and useradd/userdel (passwd). Idempotent.
set -euo pipefail

missing=()
command -v auditd >/dev/null 2>&1 || [ -x /usr/sbin/auditd ] || missing+=(auditd)
command -v sudo >/dev/null 2>&1 || missing+=(sudo)
command -v useradd >/dev/null 2>&1 || [ -x /usr/sbin/useradd ] || missing+=(passwd)

if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
