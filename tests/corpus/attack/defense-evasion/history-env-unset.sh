#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1070.003 Indicator Removal: Clear Command History; T1562.003 Impair Command History Logging
# behaviour: works in a shell whose history was switched off through env -u and HISTFILESIZE=0 set by export in a sourced file, not on the command line
# as: user
# expect: history_tampering
set -u
printf 'export HISTFILESIZE=0\nexport HISTSIZE=0\n' > "$SNTL_TMP/.e"
env -u HISTFILE bash --norc -c ". $SNTL_TMP/.e; id > /dev/null; uname -a > /dev/null"
