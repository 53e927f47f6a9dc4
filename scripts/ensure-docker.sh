#!/usr/bin/env bash
# Makes a Docker engine answer on this machine: installs Debian's docker.io (and docker-compose v1,
# the only Compose packaged here) when missing, starts dockerd in the background, waits for it.
# A dockerd started here is marked as ours, so tests may restart it: `ensure-docker.sh --restart`.
set -euo pipefail

marker=/run/codexbox-dockerd-managed
log=/var/log/codexbox-dockerd.log

wait_for_engine() {
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      echo "== docker engine running: $(docker info --format '{{.ServerVersion}}')"
      return 0
    fi
    sleep 1
  done
  echo "dockerd did not come up; last lines of its log:" >&2
  tail -n 30 "$log" >&2 || true
  return 1
}

start_dockerd() {
  nohup dockerd >>"$log" 2>&1 &
  touch "$marker"
}

if [ "${1:-}" = "--restart" ]; then
  [ -f "$marker" ] || { echo "dockerd was not started by this script; not restarting it" >&2; exit 1; }
  pkill -TERM -x dockerd || true
  for _ in $(seq 1 30); do pgrep -x dockerd >/dev/null || break; sleep 1; done
  start_dockerd
  wait_for_engine
  exit $?
fi

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
  start_dockerd
fi
wait_for_engine
