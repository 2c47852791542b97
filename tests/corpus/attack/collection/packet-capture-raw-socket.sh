#!/usr/bin/env bash
# tactic: collection
# technique: T1040 Network Sniffing
# behaviour: a Python sniffer opens a raw AF_PACKET socket and reads frames (no capture tool)
# as: root
# expect: packet_capture
# known-miss: no packet_capture detection yet (an AF_PACKET socket is not looked at)
set -u
python3 - <<'PY'
import socket, threading, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
s.settimeout(3)
def poke():
    time.sleep(0.3)
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.sendto(b"x", ("127.0.0.1", 9))
threading.Thread(target=poke).start()
try:
    print(len(s.recv(65535)), "bytes")
except socket.timeout:
    pass
PY
