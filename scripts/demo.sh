#!/usr/bin/env bash
# One command from a fresh checkout to the demo: dependencies, a Docker engine, the image, then
# `codexbox demo` (two codex turns against a bundled mock backend, no OpenAI account needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-docker.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
args=()
if ! docker image inspect codexbox:local >/dev/null 2>&1; then
  args+=(--base-image "$(bash scripts/choose-base-image.sh)")
  # The system trust store, so a TLS-intercepting proxy's CA is trusted while npm installs codex.
  [ -f /etc/ssl/certs/ca-certificates.crt ] && args+=(--extra-ca /etc/ssl/certs/ca-certificates.crt)
fi
exec node dist/cli/codexbox.mjs demo "${args[@]}"
