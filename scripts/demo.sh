#!/usr/bin/env bash
# One command from a fresh checkout to a demo run: dependencies, Docker, image, demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-docker.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
node dist/src/cli.js auth status --codex-home demo/codex-home
