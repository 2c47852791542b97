#!/usr/bin/env bash
# tactic: execution
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# behaviour: writes a shell script to /tmp with a shebang and executes the file directly
# as: user
# expect: exec_from_writable
set -u
f=/tmp/.s-$SNTL_ID.sh
printf '#!/bin/sh\nid\nuname -a\n' > "$f"
chmod +x "$f"
"$f"
rm -f "$f"
