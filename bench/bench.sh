#!/usr/bin/env bash
# npm run bench: set-up (h2load), build, then bench/run.ts.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v h2load >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "h2load not found; installing Debian's nghttp2-client" >&2
    apt-get update && apt-get install -y nghttp2-client
  else
    echo "bench: h2load is required. Install it with:  sudo apt-get install -y nghttp2-client  (Debian/Ubuntu)" >&2
    exit 1
  fi
fi

npm run build --silent
exec node --import tsx bench/run.ts "$@"
