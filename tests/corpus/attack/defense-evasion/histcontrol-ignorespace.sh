#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1562.003 Impair Defenses: Impair Command History Logging
# behaviour: an interactive-style shell with HISTCONTROL=ignoreboth and HISTIGNORE='*' so that nothing typed is kept, then commands run from it
# as: user
# expect: history_tampering
set -u
HISTCONTROL=ignoreboth HISTIGNORE='*' bash --norc -c 'id > /dev/null; hostname > /dev/null'
