#!/usr/bin/env bash
# tactic: defense-evasion
# technique: T1620 Reflective Code Loading
# behaviour: the same fileless execution with Perl: syscall memfd_create, write the ELF, exec /proc/PID/fd/N
# as: user
# expect: exec_from_memfd
set -u
perl -e '
my $name = "x"; my $fd = syscall(319, $name, 1); die "memfd: $!" if $fd < 0;
open(my $out, ">&=", $fd) or die; binmode $out;
open(my $in, "<", "/usr/bin/uname") or die; binmode $in; my $elf = do { local $/; <$in> }; print {$out} $elf; close $in;
$out->flush; exec {"/proc/$$/fd/$fd"} "apache2", "-a";
'
