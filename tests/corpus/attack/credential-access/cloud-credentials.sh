#!/usr/bin/env bash
# tactic: credential-access
# technique: T1552.001 Unsecured Credentials: Credentials In Files
# behaviour: collects cloud and cluster credentials of another user: AWS keys, kubeconfig, docker registry auth, gcloud tokens
# as: root
# expect: credential_access
# known-miss: tar -C opens the files relative to a directory fd; the engine resolves them against the process's cwd (/root): in some runs it reports /root/.aws/credentials (the wrong file), in others nothing (flaky, 1 of 3 runs)
set -u
v="$SNTL_VICTIM_HOME"
tar czf "$SNTL_TMP/c.tgz" -C "$v" .aws/credentials .kube/config .docker/config.json .config/gcloud 2>/dev/null || true
