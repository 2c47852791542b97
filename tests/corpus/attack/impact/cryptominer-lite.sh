#!/usr/bin/env bash
# tactic: impact
# technique: T1496 Resource Hijacking
# behaviour: starts a renamed "miner" from a hidden directory that connects to a mining pool port (a short busy loop stands in for mining)
# as: user
# needs: remote
# expect: masquerade, new_destination
set -u
mkdir -p "$HOME/.cache/.x"
cp "$(readlink -f /usr/bin/python3)" "$HOME/.cache/.x/kswapd0"
"$HOME/.cache/.x/kswapd0" -c "
import socket, time
s = socket.create_connection(('$SNTL_REMOTE', 3333), timeout=5)
s.sendall(b'{\"method\":\"login\",\"params\":{\"login\":\"wallet\"}}\n')
t = time.time()
while time.time() - t < 1: pass
"
rm -rf "$HOME/.cache/.x"
