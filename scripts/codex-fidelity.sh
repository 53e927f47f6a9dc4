#!/usr/bin/env bash
# The codex fidelity subset against another codex: builds the test image with @openai/codex at the
# version given (default: the newest on npm, resolved now) and runs the integration tests tagged
# codex-fidelity (login status, codex's own refresh request, `refresh_token: ""` accepted, two
# turns + resume). Usage: scripts/codex-fidelity.sh [latest|X.Y.Z|dist-tag]
set -euo pipefail
cd "$(dirname "$0")/.."
export CODEXBOX_TEST_CODEX_VERSION="${1:-latest}"
exec npx vitest run --project integration --tags-filter codex-fidelity
