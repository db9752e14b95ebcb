#!/usr/bin/env bash
# Runs a command with a Docker engine answering: uses the running daemon, or
# starts dockerd (overlay2) for the command and stops it afterwards.
# Usage: engine.sh COMMAND [ARGS…]     exit 3 when no engine can be started.
set -euo pipefail
state=${CACHE:-$HOME/.cache/sandscore}/dockerd
mkdir -p "$state"
started=""
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null; then
    echo "no Docker engine answers and dockerd is not installed (apt-get install docker.io)" >&2
    exit 3
  fi
  dockerd --storage-driver overlay2 --pidfile "$state/dockerd.pid" >"$state/dockerd.log" 2>&1 &
  started=$!
  for _ in $(seq 1 150); do
    docker info >/dev/null 2>&1 && break
    if ! kill -0 "$started" 2>/dev/null; then
      echo "dockerd failed to start; its log:" >&2; tail -20 "$state/dockerd.log" >&2; exit 3
    fi
    sleep 0.2
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not answer in 30 s" >&2; exit 3; }
fi
stop() {
  if [ -n "$started" ]; then
    kill "$started" 2>/dev/null || true
    wait "$started" 2>/dev/null || true
  fi
}
trap stop EXIT
"$@"
