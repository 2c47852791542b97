#!/usr/bin/env bash
# tactic: impact
# technique: T1489 Service Stop; T1562.001 Impair Defenses: Disable or Modify Tools
# behaviour: looks for a running security agent and kills it (here a stand-in process named like one, owned by another user)
# as: root
# setup: cp /usr/bin/sleep "$SNTL_FIX/falco"
# out-of-scope: killing the real agent would end the measurement; process kills are captured but no detection for stopping defences is planned yet
set -u
"$SNTL_FIX/falco" 30 &
mine=$!
sleep 0.2
# Found by name as an attacker would, but only the stand-in started here is killed.
for p in $(pgrep -x falco); do [ "$p" = "$mine" ] && kill "$p"; done
wait || true
