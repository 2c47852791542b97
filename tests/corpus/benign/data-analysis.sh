#!/usr/bin/env bash
# workload: analyst
# behaviour: an analyst processes CSV data in the home directory with Python, awk, sort and gzip, and keeps a compressed copy
# as: user
set -eu
d="$HOME/analysis"; mkdir -p "$d"; cd "$d"
python3 - <<'PY'
import csv, random
random.seed(7)
with open("sales.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["region", "month", "amount"])
    for i in range(2000):
        w.writerow([random.choice(["north", "south", "east", "west"]), i % 12 + 1, random.randint(10, 999)])
PY
awk -F, 'NR > 1 { s[$1] += $3 } END { for (r in s) print r, s[r] }' sales.csv | sort -k2 -n -r
python3 -c "
import csv, statistics
rows = list(csv.DictReader(open('sales.csv')))
print('mean', statistics.mean(int(r['amount']) for r in rows))
"
gzip -kf sales.csv
ls -la
