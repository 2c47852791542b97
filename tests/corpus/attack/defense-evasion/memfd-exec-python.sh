#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1620 Reflective Code Loading
# behaviour: loads a program into an anonymous memory file (memfd_create) and executes it, leaving nothing on disk
# as: user
# expect: exec_from_memfd
set -u
python3 -c "
import os
fd = os.memfd_create('kdevtmpfs', 0)
os.write(fd, open('/usr/bin/id', 'rb').read())
os.execv('/proc/self/fd/%d' % fd, ['kdevtmpfs'])
"
