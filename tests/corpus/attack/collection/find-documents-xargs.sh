#!/usr/bin/env bash
# tactic: collection
# technique: T1119 Automated Collection
# behaviour: finds documents and spreadsheets under /home by extension and copies them with xargs
# as: root
# expect: mass_read, staging
set -u
mkdir -p "$SNTL_TMP/s"
find /home -type f \( -name '*.txt' -o -name '*.csv' -o -name '*.docx' -o -name '*.pdf' \) -size -1M 2>/dev/null \
  | head -200 | xargs -r -I{} cp --parents {} "$SNTL_TMP/s/"
