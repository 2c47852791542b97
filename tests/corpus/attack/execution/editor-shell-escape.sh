#!/usr/bin/env bash
# tactic: execution
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# behaviour: starts a shell from inside vim and less (the classic restricted-shell escape)
# as: user
# expect: unusual_child
set -u
vim -es -c ':silent !sh -c id' -c ':q!' < /dev/null
echo x > "$SNTL_TMP/f"
LESSSECURE=0 less -E "$SNTL_TMP/f" < /dev/null > /dev/null || true
env -i PATH=/usr/bin:/bin gdb -q -batch -ex '!sh -c hostname' > /dev/null 2>&1 || true
