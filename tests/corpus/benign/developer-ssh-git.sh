#!/usr/bin/env bash
# workload: developer
# behaviour: a developer makes an SSH key, loads it into ssh-agent, sets up git identity and dotfiles (gitconfig, vimrc, inputrc), works on a Python project against a bare repository in home as its remote (clone, commit, push, pull), and runs the unit tests
# as: user
set -eu
cd "$HOME"
mkdir -p .ssh && chmod 700 .ssh
[ -f .ssh/id_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -C "dev@laptop" -f .ssh/id_ed25519
eval "$(ssh-agent -s)" > /dev/null
ssh-add -q .ssh/id_ed25519
ssh-add -l > /dev/null
ssh-keygen -lf .ssh/id_ed25519.pub > /dev/null
git config --global user.name "Dev Eloper"
git config --global user.email dev@example.org
git config --global init.defaultBranch main
printf 'set number\nset expandtab shiftwidth=4\nsyntax on\n' > .vimrc
printf 'set completion-ignore-case on\n' > .inputrc
rm -rf remotes work && mkdir -p remotes work
git init -q --bare remotes/tool.git
git clone -q "$HOME/remotes/tool.git" work/tool 2>/dev/null
cd work/tool
mkdir -p tool tests
printf 'def slug(s):\n    return "-".join(s.lower().split())\n' > tool/__init__.py
printf 'import unittest\nfrom tool import slug\n\nclass T(unittest.TestCase):\n    def test_slug(self):\n        self.assertEqual(slug("Hello World"), "hello-world")\n' > tests/test_slug.py
: > tests/__init__.py
python3 -m unittest -q 2>&1 | tail -1
git add -A && git commit -qm "slug helper"
git push -q origin main
vim -es -c 'normal Goprint("x")' -c 'wq' tool/__init__.py
sed -i '$d' tool/__init__.py
git diff --stat > /dev/null
python3 -m unittest -q 2>&1 | tail -1
git commit -qam "tidy" || true
git push -q origin main
cd "$HOME" && rm -rf work/tool2 && git clone -q "$HOME/remotes/tool.git" work/tool2 && git -C work/tool2 log --oneline > /dev/null
git -C work/tool pull -q
ssh-agent -k > /dev/null
rm -rf "$HOME/work" "$HOME/remotes"
