#!/usr/bin/env bash
# Installs and starts a real Docker Engine for the tests, the way DESIGN.md
# describes for this kind of machine: vfs storage, no bridge, no iptables.
#
# No GPU here: dockerd is started with a stand-in nvidia-container-runtime-hook
# on its PATH, so the engine registers its "nvidia" device driver and runs GPU
# containers with NVIDIA_VISIBLE_DEVICES set to exactly the requested UUIDs.
# The hook exits 0; everything else (the engine, the device request) is real.
# Idempotent: an engine already started this way is left alone.
set -euo pipefail

HOOK_DIR=/usr/local/lib/rbtk-ci/bin
LOG=/var/log/rbtk-ci-dockerd.log

if ! command -v dockerd >/dev/null 2>&1 || ! [ -x /bin/busybox ]; then
  echo "docker: installing docker.io and busybox-static"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io busybox-static >/dev/null
fi

mkdir -p "$HOOK_DIR"
cat > "$HOOK_DIR/nvidia-container-runtime-hook" <<'HOOK'
#!/bin/sh
# Stand-in for the NVIDIA container toolkit's OCI hook (CI has no GPU).
exit 0
HOOK
chmod 755 "$HOOK_DIR/nvidia-container-runtime-hook"

pid=$(pidof dockerd || true)
if [ -n "$pid" ] && docker info >/dev/null 2>&1; then
  if tr '\0' '\n' < "/proc/$pid/environ" | grep -q "^PATH=.*$HOOK_DIR"; then
    echo "docker: engine $(docker version --format '{{.Server.Version}}') already running with the stand-in GPU hook"
    exit 0
  fi
  echo "docker: restarting dockerd (pid $pid) with the stand-in GPU hook on its PATH"
  kill "$pid"
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
fi

echo "docker: starting dockerd"
# setsid: the engine outlives this script and is not tied to its terminal.
PATH="$HOOK_DIR:$PATH" setsid dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
  >"$LOG" 2>&1 < /dev/null &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "docker: engine $(docker version --format '{{.Server.Version}}') ready"
    exit 0
  fi
  sleep 1
done
echo "docker: dockerd did not come up; its log:" >&2
tail -50 "$LOG" >&2
exit 1
