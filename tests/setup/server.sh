#!/usr/bin/env bash
# Dependencies of the dashboard's browser test (tests/server_browser.rs): Debian's chromium,
# node and playwright-core (the driver only: it never downloads a browser). Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v openssl >/dev/null || need_apt+=(openssl)
if ((${#need_apt[@]})); then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_apt[@]}"
fi
if [ ! -d "$here/browser/node_modules/playwright-core" ]; then
  (cd "$here/browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund)
fi
