#!/usr/bin/env bash
# tactic: collection
# technique: T1113 Screen Capture
# behaviour: would grab the screen of a graphical session
# as: user
# out-of-scope: the host has no display server; no screen, keyboard or clipboard to capture
set -u
true
