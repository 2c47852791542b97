#!/usr/bin/env bash
# workload: developer
# behaviour: a C developer works on a small library and its command-line tool: out-of-tree build directory, static library with ar, links the tool and a test binary and runs both from the build directory, checks the result with ldd, nm and objdump, steps through the test under gdb in batch mode, then installs into ~/.local and runs the installed tool
# as: user
set -eu
p="$HOME/code/strtool"
rm -rf "$p" && mkdir -p "$p/src" "$p/tests" && cd "$p"
cat > src/str.h <<'C'
#ifndef STR_H
#define STR_H
#include <stddef.h>
size_t count_words(const char *s);
void upcase(char *s);
#endif
C
cat > src/str.c <<'C'
#include <ctype.h>
#include "str.h"
size_t count_words(const char *s) {
    size_t n = 0; int in = 0;
    for (; *s; s++) { if (isspace((unsigned char)*s)) in = 0; else if (!in) { in = 1; n++; } }
    return n;
}
void upcase(char *s) { for (; *s; s++) *s = (char)toupper((unsigned char)*s); }
C
cat > src/main.c <<'C'
#include <stdio.h>
#include <string.h>
#include "str.h"
int main(int argc, char **argv) {
    char line[256];
    int up = argc > 1 && strcmp(argv[1], "-u") == 0;
    size_t words = 0;
    while (fgets(line, sizeof line, stdin)) { words += count_words(line); if (up) { upcase(line); fputs(line, stdout); } }
    if (!up) printf("%zu\n", words);
    return 0;
}
C
cat > tests/test_str.c <<'C'
#include <assert.h>
#include <string.h>
#include <stdio.h>
#include "str.h"
int main(void) {
    char s[] = "mixed Case";
    assert(count_words("  two words ") == 2);
    assert(count_words("") == 0);
    upcase(s);
    assert(strcmp(s, "MIXED CASE") == 0);
    puts("all tests passed");
    return 0;
}
C
cat > Makefile <<'MK'
SRC ?= .
CFLAGS ?= -O2 -g -Wall -Wextra
PREFIX ?= $(HOME)/.local
all: libstr.a strtool test_str
str.o: $(SRC)/src/str.c $(SRC)/src/str.h
	$(CC) $(CFLAGS) -c -o $@ $<
libstr.a: str.o
	$(AR) rcs $@ $^
strtool: $(SRC)/src/main.c libstr.a
	$(CC) $(CFLAGS) -I$(SRC)/src -o $@ $< libstr.a
test_str: $(SRC)/tests/test_str.c libstr.a
	$(CC) $(CFLAGS) -I$(SRC)/src -o $@ $< libstr.a
check: test_str
	./test_str
install: strtool
	install -d $(PREFIX)/bin
	install -m 755 strtool $(PREFIX)/bin/strtool
.PHONY: all check install
MK
mkdir -p build && cd build
make -s -f ../Makefile SRC=..
make -s -f ../Makefile SRC=.. check
echo "the quick brown fox" | ./strtool
echo "shout this" | ./strtool -u
ldd ./strtool | head -3
nm libstr.a | grep -c ' T '
objdump -h strtool | grep -c text
gdb -q -batch -ex 'break count_words' -ex run -ex bt -ex continue ./test_str 2>&1 | tail -3 || true
make -s -f ../Makefile SRC=.. install
"$HOME/.local/bin/strtool" < ../src/str.c
rm -f "$HOME/.local/bin/strtool"
cd "$HOME" && rm -rf "$p"
