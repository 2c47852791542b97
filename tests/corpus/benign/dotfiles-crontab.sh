#!/usr/bin/env bash
# workload: user
# behaviour: a user tidies their shell setup the way people do: adds aliases and a PATH entry to ~/.bashrc with an editor and echo, sources it, and installs a personal crontab (a nightly notes backup) with crontab -e style editing, then lists it
# as: user
set -eu
cd "$HOME"
[ -f .bashrc ] || : > .bashrc
cp -p .bashrc .bashrc.orig
echo 'alias ll="ls -alF"' >> .bashrc
echo 'export PATH="$HOME/bin:$PATH"' >> .bashrc
vim -es -c 'normal Goalias gs="git status"' -c 'wq' .bashrc
bash -c 'source ~/.bashrc; type ll > /dev/null 2>&1 || true'
mkdir -p bin notes && printf '#!/bin/sh\ntar czf "$HOME/notes-$(date +%%a).tgz" -C "$HOME" notes\n' > bin/backup-notes && chmod +x bin/backup-notes
echo "idea" > notes/n.txt
crontab -l > cron.txt 2>/dev/null || : > cron.txt
echo '30 2 * * * $HOME/bin/backup-notes' >> cron.txt
crontab cron.txt
crontab -l > /dev/null
"$HOME/bin/backup-notes"
crontab -r
mv .bashrc.orig .bashrc
rm -rf cron.txt bin notes "$HOME"/notes-*.tgz
