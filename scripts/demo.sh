#!/usr/bin/env bash
# Serves the onnx-mlp example, scores one request over HTTP, prints the
# answer and stops the server. Usage: demo.sh SANDSCORE MODULE MODEL_DIR REQUEST PORT
set -euo pipefail
bin=$1 module=$2 models=$3 request=$4 port=$5

# sandscore refuses to run untrusted code as root; a throwaway demo on a
# root-only machine (a CI box, a container shell) may say it knows.
extra=()
if [ "$(id -u)" = 0 ]; then extra+=(--allow-root); fi

"$bin" serve --module "$module" --model-dir "$models" --host 127.0.0.1 --port "$port" "${extra[@]}" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

for _ in $(seq 1 300); do
  if curl -fsS "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then echo "the server exited; see its log above" >&2; exit 1; fi
  sleep 0.1
done

echo
echo "POST http://127.0.0.1:$port/score  ($request)"
curl -fsS "http://127.0.0.1:$port/score" -H 'content-type: application/json' --data-binary "@$request"
echo
