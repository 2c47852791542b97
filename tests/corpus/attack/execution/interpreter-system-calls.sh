#!/usr/bin/env bash
# tactic: execution
# technique: T1059 Command and Scripting Interpreter
# behaviour: shells out of text tools and interpreters that are not meant to start shells: awk system(), perl system, find -exec sh
# as: user
# expect: unusual_child
# known-miss: no unusual_child detection yet (shells started by awk, perl, find)
set -u
awk 'BEGIN { system("id") }'
perl -e 'system("/bin/sh", "-c", "uname -a")'
find "$HOME" -maxdepth 0 -exec /bin/sh -c 'hostname' \;
