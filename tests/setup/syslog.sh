#!/usr/bin/env bash
# Debian's rsyslog for the output tests (tests/outputs.rs): each test starts its own
# rsyslogd with a private configuration (own ports on 127.0.0.1, own socket instead of
# /dev/log), so the system's syslog is never involved. Idempotent: installs only if missing.
set -euo pipefail
if ! command -v rsyslogd >/dev/null 2>&1 && [ ! -x /usr/sbin/rsyslogd ]; then
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
        --no-install-recommends rsyslog
fi
