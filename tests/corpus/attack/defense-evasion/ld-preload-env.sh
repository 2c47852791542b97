#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1574.006 Hijack Execution Flow: Dynamic Linker Hijacking
# behaviour: builds a shared object that hooks libc and injects it into a program with LD_PRELOAD
# as: user
# expect: loader_hijack
set -u
mkdir -p "$HOME/.cache"
printf '#include <stdio.h>\n__attribute__((constructor)) static void init(void){ fputs("hooked\\n", stderr); }\n' > "$SNTL_TMP/h.c"
gcc -shared -fPIC -o "$HOME/.cache/libhook.so" "$SNTL_TMP/h.c"
LD_PRELOAD="$HOME/.cache/libhook.so" ls / > /dev/null
rm -f "$HOME/.cache/libhook.so"
