#!/usr/bin/env bash
# tactic: execution
# technique: T1027.004 Obfuscated Files or Information: Compile After Delivery
# behaviour: writes exploit source to /dev/shm, compiles it there with gcc and runs the result
# as: user
# expect: exec_from_writable
set -u
d=/dev/shm/.$SNTL_ID; mkdir -p "$d"
printf '#include <stdio.h>\nint main(void){puts("pwn");return 0;}\n' > "$d/e.c"
gcc -o "$d/e" "$d/e.c"
"$d/e"
rm -rf "$d"
