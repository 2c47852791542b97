#!/usr/bin/env bash
# tactic: collection
# technique: T1040 Network Sniffing
# behaviour: captures traffic on an interface with tcpdump into a file (here the namespace's loopback)
# as: root
# expect: packet_capture
set -u
timeout 3 tcpdump -i lo -c 5 -w "$SNTL_TMP/c.pcap" > /dev/null 2>&1 &
sleep 1
ping -c 3 -i 0.2 127.0.0.1 > /dev/null 2>&1 || true
wait || true
