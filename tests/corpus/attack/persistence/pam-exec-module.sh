#!/usr/bin/env bash
# tactic: persistence
# technique: T1556.003 Modify Authentication Process: Pluggable Authentication Modules
# behaviour: writes a PAM service file whose session stack runs a program with pam_exec (captures passwords with expose_authtok); a new service name, so no real login changes
# as: root
# expect: auth_config
set -u
f="/etc/pam.d/sntl-eval-$SNTL_ID"
trap 'rm -f "$f"' EXIT
python3 -c 'import sys; open(sys.argv[1], "w").write("auth optional pam_exec.so quiet expose_authtok /var/tmp/.pw\n@include common-auth\n")' "$f"
