#!/usr/bin/env bash
# tactic: discovery
# technique: T1082 System Information Discovery
# behaviour: right after getting a shell, the intruder asks who and where it is: id, whoami, uname, hostname, os-release, uptime
# as: user
# expect: discovery_burst, recon_breadth
set -u
id; whoami; uname -a; hostname; cat /etc/os-release; uptime; cat /proc/version
