#!/usr/bin/env bash
# tactic: discovery
# technique: T1016 System Network Configuration Discovery; T1049 System Network Connections Discovery
# behaviour: maps interfaces, routes, resolvers, neighbours and listening services
# as: user
# expect: discovery_burst, recon_breadth
set -u
ip addr; ip route; ip neigh; cat /etc/resolv.conf /etc/hosts; ss -tunap; cat /proc/net/tcp | head
