#!/usr/bin/env bash
# workload: user
# behaviour: a user sets up SSH for a new job: generates an ed25519 key with a passphrase-less comment and an RSA key for an old server, writes ~/.ssh/config with an editor (host aliases, identity files), fixes permissions, checks the effective configuration with ssh -G, looks at fingerprints, records a known host entry and removes a stale one, and prints the public key to paste into the git server
# as: user
set -eu
cd "$HOME"
mkdir -p .ssh && chmod 700 .ssh
rm -f .ssh/id_work .ssh/id_work.pub .ssh/id_legacy .ssh/id_legacy.pub
ssh-keygen -q -t ed25519 -N '' -C "$USER@work" -f .ssh/id_work
ssh-keygen -q -t rsa -b 2048 -N '' -C "$USER@legacy" -f .ssh/id_legacy
[ -f .ssh/config ] && cp .ssh/config .ssh/config.bak || true
printf 'Host *\n    ServerAliveInterval 60\n' > .ssh/config
vim -es -c 'normal Go' -c 'normal oHost git' -c 'normal o    HostName git.example.org' -c 'normal o    User git' -c 'normal o    IdentityFile ~/.ssh/id_work' -c 'normal o' -c 'normal oHost old' -c 'normal o    HostName 192.0.2.10' -c 'normal o    IdentityFile ~/.ssh/id_legacy' -c 'wq' .ssh/config
chmod 600 .ssh/config .ssh/id_work .ssh/id_legacy
ssh -G git | grep -E '^(hostname|user|identityfile) '
ssh -G old | grep -c identityfile
ssh-keygen -lf .ssh/id_work.pub
ssh-keygen -l -E md5 -f .ssh/id_legacy.pub > /dev/null
ssh-keygen -y -f .ssh/id_work > /dev/null
printf 'git.example.org %s\n' "$(cut -d' ' -f1,2 .ssh/id_work.pub)" > .ssh/known_hosts
printf 'stale.example.org %s\n' "$(cut -d' ' -f1,2 .ssh/id_legacy.pub)" >> .ssh/known_hosts
ssh-keygen -F git.example.org > /dev/null
ssh-keygen -R stale.example.org > /dev/null 2>&1
cat .ssh/id_work.pub
ls -la .ssh | wc -l
rm -f .ssh/known_hosts.old
