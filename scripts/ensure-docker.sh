#!/usr/bin/env bash
# Makes a Docker engine answer on this machine: installs Debian's docker.io (and docker-compose v1,
# the only Compose packaged here) when missing, starts dockerd in the background, waits for it.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  echo "== docker engine already running: $(docker info --format '{{.ServerVersion}}')"
  exit 0
fi

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! pgrep -x dockerd >/dev/null; then
  echo "== starting dockerd"
  nohup dockerd >/var/log/codexbox-dockerd.log 2>&1 &
fi
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "== docker engine running: $(docker info --format '{{.ServerVersion}}')"
    exit 0
  fi
  sleep 1
done
echo "dockerd did not come up; last lines of its log:" >&2
tail -n 30 /var/log/codexbox-dockerd.log >&2 || true
exit 1
