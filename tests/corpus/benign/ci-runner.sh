#!/usr/bin/env bash
# workload: ci
# behaviour: a CI runner checks out a project (git clone of a local repository), builds it with make and gcc, runs its test suite (C and Python), archives the artifact and cleans the workspace
# as: user
# setup: r="$SNTL_FIX/origin"; mkdir -p "$r" && cd "$r" && git init -q && printf 'int sq(int x){return x*x;}\n' > lib.c && printf '#include <assert.h>\nint sq(int);\nint main(void){assert(sq(3)==9);return 0;}\n' > test.c && printf 'import unittest\nclass T(unittest.TestCase):\n    def test_ok(self): self.assertEqual(2*2, 4)\n' > test_py.py && printf 'test: lib.c test.c\n\t$(CC) -o t lib.c test.c && ./t\n' > Makefile && git add . && git -c user.name=ci -c user.email=ci@example.org commit -qm init && chown -R "$SNTL_USER": "$r"
set -eu
ws="$HOME/builds/job-$$"
git clone -q "$SNTL_FIX/origin" "$ws"
cd "$ws"
git log --oneline -1
make -s test
python3 -m unittest -q test_py 2>&1 | tail -1
tar czf "$HOME/builds/artifact-$$.tgz" t lib.c
sha256sum "$HOME/builds/artifact-$$.tgz"
cd "$HOME" && rm -rf "$HOME/builds"
