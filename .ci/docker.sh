#!/usr/bin/env bash
# Installs and starts a real Docker Engine for the tests, the way DESIGN.md
# describes for this kind of machine: vfs storage, no bridge, no iptables.
# Idempotent: an engine that already answers is left alone.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  echo "docker: engine already running ($(docker version --format '{{.Server.Version}}'))"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! [ -x /bin/busybox ]; then
  echo "docker: installing docker.io and busybox-static"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io busybox-static >/dev/null
fi

echo "docker: starting dockerd"
mkdir -p /var/log
# setsid: the engine outlives this script and is not tied to its terminal.
setsid dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
  >/var/log/rbtk-ci-dockerd.log 2>&1 < /dev/null &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "docker: engine $(docker version --format '{{.Server.Version}}') ready"
    exit 0
  fi
  sleep 1
done
echo "docker: dockerd did not come up; its log:" >&2
tail -50 /var/log/rbtk-ci-dockerd.log >&2
exit 1
