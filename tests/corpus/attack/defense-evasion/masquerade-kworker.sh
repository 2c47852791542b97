#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1036.004 Masquerading: Masquerade Task or Service
# behaviour: runs its tool under a kernel thread's name ([kworker/0:2]) from a hidden cache directory
# as: user
# expect: masquerade
set -u
mkdir -p "$HOME/.cache/.k"
cp /usr/bin/sleep "$HOME/.cache/.k/kworker"
( exec -a '[kworker/0:2]' "$HOME/.cache/.k/kworker" 1 )
rm -rf "$HOME/.cache/.k"
