#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1140 Deobfuscate/Decode Files or Information
# behaviour: an obfuscated one-liner: base64 text decoded and piped straight into a shell
# as: user
# expect: decode_and_run
set -u
echo 'aWQ7IHVuYW1lIC1hOyBjYXQgL2V0Yy9wYXNzd2QgfCB3YyAtbAo=' | base64 -d | sh
