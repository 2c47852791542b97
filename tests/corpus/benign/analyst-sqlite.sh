#!/usr/bin/env bash
# workload: analyst
# behaviour: an analyst loads CSV exports into a SQLite database under home with the sqlite3 shell and Python, runs report queries, exports a summary CSV, looks at it with column and less, and archives the month
# as: user
set -eu
d="$HOME/reports/2026-11"; mkdir -p "$d"; cd "$d"
python3 - <<'PY'
import csv, random
random.seed(11)
with open("orders.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["id", "customer", "region", "amount", "day"])
    for i in range(400):
        w.writerow([i, f"c{random.randint(1, 60)}", random.choice(["north", "south", "east", "west"]), round(random.uniform(5, 900), 2), random.randint(1, 30)])
with open("customers.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["customer", "segment"])
    for c in range(1, 61):
        w.writerow([f"c{c}", random.choice(["retail", "wholesale"])])
PY
rm -f sales.db
sqlite3 sales.db <<'SQL'
.mode csv
.import orders.csv orders
.import customers.csv customers
CREATE INDEX o_c ON orders(customer);
.headers on
.output by_region.csv
SELECT region, COUNT(*) AS n, ROUND(SUM(amount), 2) AS total FROM orders GROUP BY region ORDER BY total DESC;
.output stdout
SQL
python3 - <<'PY'
import csv, sqlite3, statistics
db = sqlite3.connect("sales.db")
rows = db.execute("SELECT c.segment, o.amount FROM orders o JOIN customers c USING(customer)").fetchall()
by = {}
for seg, amt in rows:
    by.setdefault(seg, []).append(float(amt))
with open("segments.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["segment", "median", "mean"])
    for seg, v in sorted(by.items()):
        w.writerow([seg, statistics.median(v), round(statistics.mean(v), 2)])
PY
column -s, -t < by_region.csv > /dev/null
less -F segments.csv > /dev/null
sqlite3 -header -csv sales.db "SELECT day, COUNT(*) FROM orders GROUP BY day;" | sort -t, -k2 -nr | head -5 > /dev/null
cut -d, -f3 orders.csv | sort | uniq -c > /dev/null
cd "$HOME/reports" && tar czf 2026-11.tgz 2026-11 && ls -l 2026-11.tgz > /dev/null
rm -rf "$HOME/reports"
