#!/usr/bin/env bash
# Make a local Debian bookworm base image with Python 3.11 for the Dockerfile's BASE_IMAGE,
# for machines without an image registry: debootstrap (minbase + python3, python3-venv) from the
# Debian mirror, imported into the image store that buildah and podman share.
# usage: base-image.sh [NAME]   (default localhost/vecmon-base:bookworm; kept if it exists)
set -euo pipefail
name=${1:-localhost/vecmon-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if podman image exists "$name"; then
  echo "base image $name exists"
  exit 0
fi
root=$(mktemp -d /tmp/vecmon-base.XXXXXX)
# debootstrap mounts /proc and /sys in the target: unmount before removing or packing it.
unmount_all() { grep -o " $root/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true; }
trap 'unmount_all; rm -rf --one-file-system "$root"' EXIT
start=$(date +%s)
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" >"$root.log" 2>&1 \
  || { tail -20 "$root.log"; exit 1; }
rm -f "$root.log"
unmount_all
# Apt lists and caches, documentation and translations are not needed at run time.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
tar -C "$root" -c . | podman import --quiet - "$name" >/dev/null
echo "base image $name made in $(( $(date +%s) - start ))s"
