#!/usr/bin/env bash
# workload: developer
# behaviour: builds a Rust crate (cargo --offline, no dependencies) and a C project (make, gcc) in the home directory and under /tmp, commits with git, runs the results and the tests
# as: user
set -eu
export CARGO_HOME="$HOME/.cargo"
w="$HOME/src"; mkdir -p "$w"; cd "$w"
rm -rf hello calc
cargo new --vcs none --quiet hello 2>/dev/null || cargo new --vcs none hello
cd hello
cat > src/main.rs <<'RS'
fn add(a: u32, b: u32) -> u32 { a + b }
fn main() { println!("2 + 2 = {}", add(2, 2)); }
#[cfg(test)]
mod t { #[test] fn adds() { assert_eq!(super::add(2, 2), 4); } }
RS
cargo build --offline --quiet
./target/debug/hello
cargo test --offline --quiet > /dev/null
cd "$w"
mkdir -p calc && cd calc
cat > calc.c <<'C'
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) { long s = 0; for (int i = 1; i < argc; i++) s += strtol(argv[i], 0, 10); printf("%ld\n", s); return 0; }
C
printf 'CFLAGS=-O2 -Wall\ncalc: calc.c\n\t$(CC) $(CFLAGS) -o $@ $<\ntest: calc\n\t./calc 1 2 3 | grep -q 6\nclean:\n\trm -f calc\n.PHONY: test clean\n' > Makefile
make -s
make -s test
git init -q . && git add . && git -c user.name=dev -c user.email=dev@example.org commit -qm "calc: sum its arguments"
git log --oneline | head -1
# A scratch build under /tmp, as one does for a quick experiment.
t=$(mktemp -d /tmp/scratch.XXXXXX)
cp calc.c "$t/" && gcc -O0 -g -o "$t/calc" "$t/calc.c" && "$t/calc" 40 2
rm -rf "$t"
make -s clean
