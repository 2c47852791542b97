#!/usr/bin/env bash
# tactic: credential-access
# technique: T1552.004 Unsecured Credentials: Private Keys
# behaviour: copies another user's GnuPG private key store with python's shutil
# as: root
# expect: credential_access
set -u
python3 -c "import shutil,sys; shutil.copytree(sys.argv[1] + '/.gnupg/private-keys-v1.d', sys.argv[2] + '/g')" "$SNTL_VICTIM_HOME" "$SNTL_TMP"
