#!/usr/bin/env bash
# PostgreSQL server binaries for the store tests and the dashboard suites on PostgreSQL
# (initdb, pg_ctl, pg_isready, createdb: each test process makes a throw-away cluster of its
# own, sentinel/src/server/postgres/testing.rs). Debian's package also creates the `postgres`
# user the cluster runs as when the tests run as root. Idempotent.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql
fi
