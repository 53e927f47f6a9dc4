#!/usr/bin/env bash
# Prints the base image to build on: node:22-bookworm-slim when it is here or can be pulled,
# otherwise a local stand-in made by make-base-image.sh (machines without a registry).
set -euo pipefail
public=node:22-bookworm-slim
standin=codexbox-base:bookworm-slim-standin
if docker image inspect "$public" >/dev/null 2>&1 || timeout 120 docker pull -q "$public" >/dev/null 2>&1; then
  echo "$public"
else
  bash "$(dirname "$0")/make-base-image.sh" "$standin" >&2
  echo "$standin"
fi
