#!/usr/bin/env python3
"""Stand-in for the far side of a scenario, inside its empty network namespace (nothing
leaves the machine): a payload web server, an operator driving reverse shells, sinks for
exfiltration and beacons, an SSH-looking banner, and a cloud metadata service.

usage: remote.py REMOTE_ADDR METADATA_ADDR READY_FILE
"""
import http.server
import socket
import socketserver
import sys
import threading
import time

REMOTE, METADATA, READY = sys.argv[1], sys.argv[2], sys.argv[3]

PAYLOAD_SH = b"#!/bin/sh\necho stage-two running as $(id -un)\nuname -a\n"
STAGE_PY = b"import os, platform\nprint('stage two', os.getuid(), platform.node())\n"
# A tiny static ELF that exits 0 (x86-64): what a dropper fetches and runs.
with open("/usr/bin/true", "rb") as f:
    TOOL = f.read()
CREDS = (b'{"Code":"Success","AccessKeyId":"ASIAFAKEFAKEFAKE",'
         b'"SecretAccessKey":"fakefakefake","Token":"fake"}')


class Web(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def send(self, body, ctype="application/octet-stream"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        p = self.path
        if p.startswith("/latest/meta-data/iam/security-credentials/"):
            name = p.rsplit("/", 1)[1]
            self.send(CREDS if name else b"app-role", "text/plain")
        elif p.startswith("/latest/meta-data"):
            self.send(b"ami-id\nhostname\niam/\ninstance-id\n", "text/plain")
        elif p.endswith(".sh"):
            self.send(PAYLOAD_SH, "text/x-sh")
        elif p.endswith(".py"):
            self.send(STAGE_PY, "text/x-python")
        elif p.endswith(".b64"):
            import base64
            self.send(base64.b64encode(PAYLOAD_SH), "text/plain")
        elif p.startswith("/tool") or p.endswith(".bin"):
            self.send(TOOL)
        else:
            self.send(b"sleep 60\n", "text/plain")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        self.send(b"ok\n", "text/plain")

    do_PUT = do_POST


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve_http(addr, port):
    s = Server((addr, port), Web)
    threading.Thread(target=s.serve_forever, daemon=True).start()


def tcp(addr, port, handler):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(16)

    def loop():
        while True:
            c, _ = ls.accept()
            threading.Thread(target=handler, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()


def drain(c):
    """Exfiltration / beacon sink: read until the sender closes."""
    c.settimeout(20)
    try:
        while c.recv(65536):
            pass
        c.sendall(b"ok\n")
    except OSError:
        pass
    c.close()


def operator(c):
    """Drives a reverse shell the way a person at the other end would."""
    c.settimeout(20)
    try:
        for cmd in (b"id\n", b"uname -a\n", b"cat /etc/hostname\n", b"exit\n"):
            time.sleep(0.5)
            c.sendall(cmd)
        while c.recv(65536):
            pass
    except OSError:
        pass
    c.close()


def banner(c):
    c.settimeout(10)
    try:
        c.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")
        while c.recv(65536):
            pass
    except OSError:
        pass
    c.close()


def udp_sink(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))

    def loop():
        while True:
            s.recvfrom(65536)
    threading.Thread(target=loop, daemon=True).start()


serve_http(REMOTE, 80)
serve_http(REMOTE, 8080)
serve_http(METADATA, 80)
for port in (443, 8443, 3333, 53):
    tcp(REMOTE, port, drain)
for port in (4444, 9001):
    tcp(REMOTE, port, operator)
tcp(REMOTE, 22, banner)
udp_sink(REMOTE, 53)
with open(READY, "w") as f:
    f.write("ready\n")
while True:
    time.sleep(3600)
