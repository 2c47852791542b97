#!/usr/bin/env bash
# tactic: execution
# technique: T1140 Deobfuscate/Decode Files or Information; T1059.004 Unix Shell
# behaviour: decodes an embedded base64 script with openssl (not base64) into /var/tmp and runs it with sh a moment later
# as: user
# expect: decode_and_run
set -u
f="/var/tmp/.sntl-$SNTL_ID"; trap 'rm -f "$f"' EXIT
blob=$(printf 'id\nuname -a\nhostname\n' | base64 -w0)
echo "$blob" | openssl enc -d -base64 -A -out "$f"
sh "$f" > /dev/null
