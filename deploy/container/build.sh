#!/usr/bin/env bash
# Build the vecmon image with buildah, offline: no Docker daemon, no registry, and no package
# index inside build steps.
#   1. the base image: BASE_IMAGE if given, else a local Debian bookworm made by base-image.sh
#   2. the wheels: vecmon and its dependencies into dist/wheels, outside the build (deploy/ci/wheel.sh
#      makes them too; WHEELS_READY=1 reuses them)
#   3. buildah bud --isolation chroot --format docker (the docker format keeps the HEALTHCHECK)
#   4. checks of the result: runs as uid 10001, has a healthcheck and the state volume, holds no
#      compiler, and `vecmon --version` works
# usage: deploy/container/build.sh            (IMAGE=localhost/vecmon:latest by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
image=${IMAGE:-localhost/vecmon:latest}
base=${BASE_IMAGE:-localhost/vecmon-base:bookworm}
python=${PYTHON:-python3}
t0=$(date +%s)
[ -n "${BASE_IMAGE:-}" ] || deploy/container/base-image.sh "$base"
t1=$(date +%s)
if [ "${WHEELS_READY:-0}" != 1 ] || ! ls dist/wheels/vecmon-*.whl >/dev/null 2>&1; then
  rm -rf dist/wheels build/lib
  "$python" -m pip wheel --quiet --wheel-dir dist/wheels . 2> >(grep -v "^WARNING: Location" >&2)
fi
t2=$(date +%s)
buildah bud --quiet --isolation chroot --format docker --pull-never \
  --build-arg BASE_IMAGE="$base" -f Dockerfile -t "$image" . >/dev/null
t3=$(date +%s)

inspect() { podman image inspect --format "$1" "$image"; }
user=$(inspect '{{.Config.User}}')
[ "$user" = "10001:10001" ] || { echo "image user is '$user', not 10001:10001" >&2; exit 1; }
inspect '{{json .HealthCheck.Test}}' | grep -q '/health' || { echo "no HEALTHCHECK on /health" >&2; exit 1; }
inspect '{{json .Config.Volumes}}' | grep -q '/var/lib/vecmon' || { echo "no state volume" >&2; exit 1; }
ctr=$(buildah from --pull-never "$image")
trap 'buildah rm "$ctr" >/dev/null' EXIT
buildah run --isolation chroot "$ctr" -- sh -c '
  for tool in gcc cc c++ g++ clang make ld; do
    if command -v "$tool" >/dev/null; then echo "compiler or build tool in the image: $tool" >&2; exit 1; fi
  done
  [ "$(id -u)" = 10001 ] || { echo "runs as uid $(id -u)" >&2; exit 1; }
  [ -w /var/lib/vecmon ] || { echo "/var/lib/vecmon is not writable" >&2; exit 1; }'
buildah run --isolation chroot "$ctr" -- vecmon --version
size=$(podman image inspect --format '{{.Size}}' "$image")
base_size=$(podman image inspect --format '{{.Size}}' "$base")
echo "image $image: $(( size / 1000000 )) MB (base $(( base_size / 1000000 )) MB);" \
     "base $(( t1 - t0 ))s, wheels $(( t2 - t1 ))s, buildah bud $(( t3 - t2 ))s"
