#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1027 Obfuscated Files or Information
# behaviour: Python decodes a zlib+base64 blob and exec()s it (typical of packed droppers)
# as: user
# expect: decode_and_run
set -u
blob=$(python3 -c "import base64,zlib; print(base64.b64encode(zlib.compress(b'import os\nos.system(\"id; hostname\")\n')).decode())")
python3 -c "import base64,zlib;exec(zlib.decompress(base64.b64decode('$blob')))"
