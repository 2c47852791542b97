#!/usr/bin/env bash
# An ordinary user's routine, learned while `sentinel learn` runs: the baseline an attack
# scenario's user had before its account was misused. Not a scenario.
set -u
cd "$HOME"
mkdir -p notes proj
printf 'meeting at 10\ntodo: review PR\n' > notes/today.txt
ls -la "$HOME" > /dev/null
cat notes/today.txt > /dev/null
grep -n todo notes/today.txt > /dev/null
sed -n 1p notes/today.txt > /dev/null
wc -l notes/today.txt > /dev/null
head -n 1 /etc/hostname > /dev/null
date > /dev/null
printf 'print("hello")\n' > proj/hello.py
python3 proj/hello.py > /dev/null
git -C proj init -q
git -C proj add hello.py
git -C proj -c user.name=u -c user.email=u@example.org commit -qm start
git -C proj log --oneline > /dev/null
git -C proj status --short > /dev/null
find "$HOME/notes" -name '*.txt' > /dev/null
tar czf "$HOME/notes.tgz" -C "$HOME" notes
ps -u "$USER" > /dev/null
df -h "$HOME" > /dev/null
vim -es -c 'normal Gohello' -c 'wq' notes/today.txt
less -F notes/today.txt > /dev/null
rm -f "$HOME/notes.tgz"
