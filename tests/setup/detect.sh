#!/usr/bin/env bash
# Tools the detection scenario tests (tests/scenarios.rs) play behaviours with.
set -euo pipefail
missing=()
command -v setpriv >/dev/null || missing+=(util-linux)
command -v useradd >/dev/null || missing+=(passwd)
command -v su >/dev/null || missing+=(login)
command -v insmod >/dev/null || [ -x /usr/sbin/insmod ] || [ -x /sbin/insmod ] || missing+=(kmod)
[ -x /usr/bin/python3 ] || missing+=(python3)
command -v make >/dev/null || missing+=(make)
command -v cc >/dev/null || missing+=(gcc)
command -v git >/dev/null || missing+=(git)
command -v hostname >/dev/null || missing+=(hostname)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi
