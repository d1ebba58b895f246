#!/usr/bin/env bash
# `make image-test`: the image and the compose stack, built and run with podman
# as a user would run them with Docker. Needs root, Debian's apt and PyPI.
#
# No registry is reachable here, so container-standins.sh (beside the clone
# in CI, ../shared/tools/) makes local stand-ins for the base images, installs
# podman and Docker Compose v2, and starts podman's Docker-compatible API
# service and a loop that runs HEALTHCHECKs. Everything it starts, and every
# container, pod, network and volume the tests make, is removed when this
# script ends, whichever way it ends.
set -euo pipefail
cd "$(dirname "$0")/../.."

STANDINS=${CONTAINER_STANDINS:-../shared/tools/container-standins.sh}
export CTR_WORK=${CTR_WORK:-/tmp/groundwork-image-test}
PY=${PY:-.venv/bin/python}
LABEL=groundwork.image-test
PROJECT=groundwork-image-test
started=$SECONDS

stop_pid_file() {  # stop_pid_file FILE: the process whose id FILE holds, if still there
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

cleanup() {
  local status=$?
  set +e
  if command -v podman >/dev/null 2>&1; then
    # The tests remove what they start; this catches what a failure left.
    podman ps -aq --filter "label=$LABEL" | xargs -r podman rm -f -t 0 >/dev/null
    podman ps -aq --filter "label=com.docker.compose.project=$PROJECT" | xargs -r podman rm -f -t 0 >/dev/null
    podman pod ps -q --filter "label=$LABEL" | xargs -r podman pod rm -f >/dev/null
    podman network ls -q --filter "label=$LABEL" | xargs -r podman network rm -f >/dev/null
    podman network ls -q --filter "label=com.docker.compose.project=$PROJECT" | xargs -r podman network rm -f >/dev/null
    podman volume ls -q --filter "label=com.docker.compose.project=$PROJECT" | xargs -r podman volume rm -f >/dev/null
  fi
  stop_pid_file "$CTR_WORK/hc-loop.pid"
  stop_pid_file "$CTR_WORK/podman-service.pid"
  rm -f "$CTR_WORK/podman.sock"
  echo "image-test: $((SECONDS - started)) s in all, exit $status"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ ! -f "$STANDINS" ]; then
  echo "error: $STANDINS not found; set CONTAINER_STANDINS to container-standins.sh" >&2
  exit 1
fi
# A service or loop left by an earlier run that was killed outright.
stop_pid_file "$CTR_WORK/hc-loop.pid"
stop_pid_file "$CTR_WORK/podman-service.pid"

echo "==> stand-in base images, podman, Docker Compose v2 (work dir $CTR_WORK)"
timeout 1200 nice -n 5 bash "$STANDINS" > "$CTR_WORK.log" 2>&1 || {
  tail -40 "$CTR_WORK.log" >&2
  echo "error: container-standins.sh failed (log: $CTR_WORK.log)" >&2
  exit 1
}
echo "    ready after $((SECONDS - started)) s"
for _ in $(seq 1 30); do [ -S "$CTR_WORK/podman.sock" ] && break; sleep 1; done

echo "==> pytest -m image"
IMAGE_TEST_WORK=$CTR_WORK timeout 1500 "$PY" -m pytest -m image tests/image -p no:cacheprovider "$@"
