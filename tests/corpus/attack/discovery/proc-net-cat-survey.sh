#!/usr/bin/env bash
# tactic: discovery
# technique: T1016 System Network Configuration Discovery; T1049 System Network Connections Discovery
# behaviour: maps the network by reading the kernel's tables with cat and head (no ip, ss or netstat): sockets, routes, ARP, resolvers, hosts
# as: user
# expect: recon_breadth, discovery_burst
set -u
cat /proc/net/tcp /proc/net/udp > /dev/null
head -n 20 /proc/net/route /proc/net/arp > /dev/null
cat /etc/resolv.conf /etc/hosts > /dev/null
cat /proc/net/dev > /dev/null
