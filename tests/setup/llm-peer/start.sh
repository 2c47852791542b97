#!/usr/bin/env bash
# Starts the real local model server on 127.0.0.1 and prints shell assignments for the tests:
#   eval "$(tests/setup/llm-peer/start.sh)"   ...   kill "$LLM_PEER_PID"
# It speaks the OpenAI API (base $LLM_PEER_OPENAI_BASE, /chat/completions) and the Anthropic
# Messages API (base $LLM_PEER_ANTHROPIC_BASE, /v1/messages), key $LLM_PEER_API_KEY.
set -euo pipefail
DIR=${LLM_PEER_DIR:-$PWD/.llm-peer}
KEY=${LLM_PEER_API_KEY:-sentinel-test-key}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$DIR/bin/llama-server" -m "$DIR/models/SmolLM2-135M-Instruct.Q4_1.gguf" --host 127.0.0.1 \
  --port "$PORT" -t 2 -c 4096 -np 1 --no-webui --api-key "$KEY" >"$DIR/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 200); do
  if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; then
    echo "export LLM_PEER_PID=$PID LLM_PEER_API_KEY=$KEY"
    echo "export LLM_PEER_OPENAI_BASE=http://127.0.0.1:$PORT/v1 LLM_PEER_ANTHROPIC_BASE=http://127.0.0.1:$PORT"
    exit 0
  fi
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
echo "llm-peer did not start; see $DIR/server.log" >&2
kill "$PID" 2>/dev/null || true
exit 1
