#!/usr/bin/env bash
# Builds a local stand-in for node:<major>-bookworm-slim on machines that cannot pull images:
# a debootstrap'd Debian bookworm (minbase) plus this machine's node and npm, and a `node`
# user with uid/gid 1000 exactly as the official image has. Idempotent: an existing tag is kept.
set -euo pipefail

tag="${1:-codexbox-base:bookworm-slim-standin}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag already present"
  exit 0
fi

command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }

work="$(mktemp -d /var/tmp/codexbox-base.XXXXXX)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

mirror="$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)"
echo "debootstrap bookworm (minbase) from ${mirror:-http://deb.debian.org/debian}"
debootstrap --variant=minbase bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log"; exit 1; }
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import - codexbox-base:bookworm-rootfs >/dev/null

node_bin="$(readlink -f "$(command -v node)")"
npm_dir="$(dirname "$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")")/npm"
ctx="$work/ctx"
mkdir -p "$ctx"
cp "$node_bin" "$ctx/node"
cp -a "$npm_dir" "$ctx/npm"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM codexbox-base:bookworm-rootfs
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
ENV NODE_VERSION=standin
CMD ["node"]
DOCKERFILE
docker build -q -t "$tag" "$ctx" >/dev/null
docker rmi codexbox-base:bookworm-rootfs >/dev/null 2>&1 || true
echo "built base image $tag"
