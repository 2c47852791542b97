#!/usr/bin/env bash
# Tools the detection corpus (tests/corpus, `cargo xtask eval`, tests/corpus_eval.rs) plays
# attacks and benign workloads with. Idempotent: installs only what is missing.
set -euo pipefail
missing=()
need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] || missing+=("$2"); }
need useradd passwd
need setpriv util-linux
need ip iproute2
need ss iproute2
need sudo sudo
need at at
need crontab cron
need nc netcat-openbsd
need socat socat
need tcpdump tcpdump
need curl curl
need wget wget
need python3 python3
need perl perl
need gcc gcc
need make make
need git git
need tar tar
need zip zip
need xxd xxd
need openssl openssl
need setcap libcap2-bin
need setfattr attr
need getfattr attr
need chattr e2fsprogs
need insmod kmod
need gdb gdb
need lsof lsof
need ps procps
need vim vim
need less less
need shred coreutils
need ssh openssh-client
need strings binutils
need logrotate logrotate
need pytest-3 python3-pytest   # benign/python-venv-pytest (offline: the system's pytest)
/usr/bin/python3 -c "import ensurepip" 2>/dev/null || missing+=(python3-venv)
[ -x /usr/bin/cargo ] || missing+=(cargo)   # the developer workload's own (distribution) Rust
[ -x /usr/bin/python3.11 ] || [ -x /usr/bin/python3 ] || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u)
fi
