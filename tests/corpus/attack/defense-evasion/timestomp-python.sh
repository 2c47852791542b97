#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1070.006 Indicator Removal: Timestomp
# behaviour: an admin backdates a file it planted under /usr/local with os.utime (no touch command)
# as: root
# expect: timestomp
set -u
f=$SNTL_FIX/libupdate.so
cp /bin/true "$f"
python3 -c "import os,sys; os.utime(sys.argv[1], (1546300800, 1546300800))" "$f"
rm -f "$f"
