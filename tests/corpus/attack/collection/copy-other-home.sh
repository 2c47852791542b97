#!/usr/bin/env bash
# tactic: collection
# technique: T1005 Data from Local System
# behaviour: an admin copies another user's documents wholesale into a staging directory
# as: root
# expect: mass_read, staging
set -u
cp -r "$SNTL_VICTIM_HOME/docs" "$SNTL_TMP/loot"
