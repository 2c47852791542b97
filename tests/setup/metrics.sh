#!/usr/bin/env bash
# promtool, which tests/metrics.rs validates the Prometheus exposition with: Debian's
# prometheus package (the server is not started by the tests). Idempotent.
set -euo pipefail
if ! command -v promtool >/dev/null 2>&1; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
fi
