#!/usr/bin/env bash
# Soak: serves the onnx-mlp example with WORKERS instances, saturates it over
# loopback for MINUTES with CONCURRENCY clients, prints answers by kind and
# the server's RSS at start and end, then stops the server.
# Usage: soak.sh SANDSCORE MODULE MODEL_DIR SOAK_CLIENT MINUTES CONCURRENCY WORKERS
set -euo pipefail
bin=$1 module=$2 models=$3 client=$4 minutes=$5 concurrency=$6 workers=$7
extra=()
if [ "$(id -u)" = 0 ]; then extra+=(--allow-root); fi
log=$(mktemp)
RUST_LOG=warn "$bin" serve --module "$module" --model-dir "$models" --host 127.0.0.1 --port 0 \
  --workers "$workers" "${extra[@]}" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$log"' EXIT
url=""
for _ in $(seq 1 300); do
  url=$(sed -n 's/^listening on //p' "$log")
  if [ -n "$url" ] && curl -fsS "$url/v2/health/ready" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
[ -n "$url" ] || { cat "$log"; exit 1; }
"$client" "$url" "$server" "$minutes" "$concurrency"
