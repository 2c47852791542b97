#!/usr/bin/env bash
# workload: developer
# behaviour: a Python developer sets up a project with its own virtual environment (offline: the system's pytest through --system-site-packages), writes a module and its tests, runs pytest (a failing test, a fix, a green run), lists the environment's packages with pip (the system's, seen through the venv), and formats a report with the module from the command line
# as: user
set -eu
p="$HOME/projects/invoice"
rm -rf "$p" && mkdir -p "$p/invoice" "$p/tests" && cd "$p"
python3 -m venv --system-site-packages --without-pip .venv
. .venv/bin/activate
cat > invoice/__init__.py <<'PY'
"""Totals for simple invoices."""
from decimal import Decimal


def total(lines, tax_rate="0.20"):
    net = sum(Decimal(str(q)) * Decimal(str(p)) for q, p in lines)
    return (net * (1 + Decimal(tax_rate))).quantize(Decimal("0.01"))


def main(argv=None):
    import argparse
    import json
    ap = argparse.ArgumentParser(prog="invoice")
    ap.add_argument("file")
    a = ap.parse_args(argv)
    with open(a.file) as f:
        lines = json.load(f)
    print(f"total: {total(lines)}")
PY
cat > invoice/__main__.py <<'PY'
from invoice import main

main()
PY
cat > tests/test_total.py <<'PY'
from decimal import Decimal

from invoice import total


def test_empty():
    assert total([]) == Decimal("0.00")


def test_tax():
    assert total([(2, "10.00")]) == Decimal("24.00")


def test_rounding():
    assert total([(1, "0.333")], tax_rate="0") == Decimal("0.33")
PY
printf '[pytest]\ntestpaths = tests\naddopts = -q\n' > pytest.ini
# A test the developer gets wrong first.
printf 'from invoice import total\n\n\ndef test_wrong():\n    assert total([(1, 1)]) == 1\n' > tests/test_wrong.py
python -m pytest -p no:cacheprovider 2>&1 | tail -2 || true
rm tests/test_wrong.py
python -m pytest 2>&1 | tail -1
python -m pytest -k tax 2>&1 | tail -1
python -m pip --disable-pip-version-check list 2>/dev/null | grep -ci pytest || true
python -c 'import sys; print(sys.prefix != sys.base_prefix)'
printf '[[3, "9.99"], [1, "25"]]\n' > march.json
python -m invoice march.json
python -m compileall -q invoice
deactivate
cd "$HOME" && rm -rf "$p"
