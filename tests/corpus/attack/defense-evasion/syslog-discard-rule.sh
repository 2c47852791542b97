#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1562.006 Impair Defenses: Indicator Blocking
# behaviour: adds an rsyslog rule that throws away authentication messages (not applied: no reload), written with printf through dd
# as: root
# expect: auth_config
set -u
f="/etc/rsyslog.d/00-sntl-eval-$SNTL_ID.conf"
trap 'rm -f "$f"' EXIT
mkdir -p /etc/rsyslog.d
printf 'auth,authpriv.* stop\n' | dd of="$f" status=none
