#!/usr/bin/env bash
# Tools of the package tests (tests/package.rs, tests/notify.rs): lintian, systemd-analyze
# (package systemd; installing it does not make systemd the init), strace and setpriv for the
# capability measurement, dpkg-dev for dpkg-shlibdeps, adduser for the postinst. Idempotent.
set -euo pipefail
missing=()
command -v lintian >/dev/null || missing+=(lintian)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v strace >/dev/null || missing+=(strace)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
command -v adduser >/dev/null || [ -x /usr/sbin/adduser ] || missing+=(adduser)
command -v deb-systemd-helper >/dev/null || missing+=(init-system-helpers)
command -v strip >/dev/null || missing+=(binutils)
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
