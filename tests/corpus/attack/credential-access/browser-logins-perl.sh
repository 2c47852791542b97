#!/usr/bin/env bash
# tactic: credential-access
# technique: T1555.003 Credentials from Password Stores: Credentials from Web Browsers
# behaviour: a Perl one-liner walks other users' Firefox profiles and prints their saved logins and key database size
# as: root
# expect: credential_access
set -u
perl -e 'for my $f (glob("/home/*/.mozilla/firefox/*/logins.json"), glob("/home/*/.mozilla/firefox/*/key4.db")) { open(my $h, "<", $f) or next; local $/; my $d = <$h>; print "$f ", length($d), "\n"; }' > /dev/null
