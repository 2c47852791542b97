#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1036.005 Masquerading: Match Legitimate Name or Location
# behaviour: copies a shell to a path named like a system daemon (sshd) in the user's tree and runs it
# as: user
# expect: masquerade
set -u
mkdir -p "$HOME/.local/sbin"
cp /bin/bash "$HOME/.local/sbin/sshd"
"$HOME/.local/sbin/sshd" -c 'sleep 0.5'
rm -rf "$HOME/.local/sbin"
