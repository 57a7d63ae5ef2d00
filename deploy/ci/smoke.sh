#!/usr/bin/env bash
# Smoke test of an installed vecmon against a throwaway PostgreSQL 15 on loopback:
# --version, collect (every default collector, vecmon_up=1) and generate (rules, dashboards).
#
#   deploy/ci/smoke.sh venv /path/to/venv/bin/vecmon
#   deploy/ci/smoke.sh image localhost/vecmon:latest      # buildah run --isolation chroot
#
# The image mode also starts `vecmon run` in the container and runs the image's HEALTHCHECK.
set -euo pipefail
mode=${1:?usage: smoke.sh venv VECMON | image IMAGE}
what=${2:?usage: smoke.sh venv VECMON | image IMAGE}
pg_bin=${VECMON_PG15_BIN:-/usr/lib/postgresql/15/bin}
work=$(mktemp -d /tmp/vecmon-smoke.XXXXXX)
chmod 0755 "$work"
mkdir -p "$work/etc" "$work/out" "$work/pgdata" "$work/sock"
chmod 0777 "$work/out"
container=""

as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work/pgdata" "$work/sock"
cleanup() {
  [ -n "$container" ] && buildah rm "$container" >/dev/null 2>&1 || true
  as_postgres "$pg_bin/pg_ctl" -D "$work/pgdata" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_postgres "$pg_bin/initdb" -D "$work/pgdata" -U postgres --auth=trust -E UTF8 >/dev/null
as_postgres "$pg_bin/pg_ctl" -D "$work/pgdata" -l "$work/sock/pg.log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$work/sock -c fsync=off" start >/dev/null
psql() { "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
psql -d postgres -c "CREATE ROLE vecmon_monitor LOGIN IN ROLE pg_monitor" -c "CREATE DATABASE smoke"
psql -d smoke -c "CREATE TABLE items (id int PRIMARY KEY, body text)" -c "INSERT INTO items SELECT g, 'x' FROM generate_series(1, 100) g"
cat >"$work/etc/vecmon.yaml" <<YAML
databases:
  - name: smoke
    dsn: "host=127.0.0.1 port=$port dbname=smoke user=vecmon_monitor"
alerting:
  runbook_base_url: https://runbooks.example.org/vecmon/README.md
YAML
chmod 0644 "$work/etc/vecmon.yaml"

case $mode in
  venv)
    vecmon() { "$what" "$@"; }
    etc=$work/etc out=$work/out ;;
  image)
    container=$(buildah from --pull-never "$what")
    vecmon() { buildah run --isolation chroot -v "$work/etc:/etc/vecmon:ro" -v "$work/out:/out" "$container" -- vecmon "$@"; }
    etc=/etc/vecmon out=/out ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac

vecmon --version | tee "$work/version.txt"
grep -q '^vecmon [0-9]' "$work/version.txt"
vecmon collect -c "$etc/vecmon.yaml" >"$work/collect.txt"
grep -q '^vecmon_up{target="smoke"} 1.0$' "$work/collect.txt" || { cat "$work/collect.txt"; exit 1; }
grep -q '^vecmon_pg_table_' "$work/collect.txt" || { echo "no table metrics" >&2; exit 1; }
echo "collect: $(grep -c '^vecmon_' "$work/collect.txt") samples, vecmon_up{target=\"smoke\"} 1.0"
vecmon generate -c "$etc/vecmon.yaml" -o "$out" >"$work/generated.txt"
ls "$work/out/grafana/"*.json "$work/out/prometheus/"*.yml >/dev/null
echo "generate: $(wc -l <"$work/generated.txt") files"

if [ "$mode" = image ]; then
  # The image's HEALTHCHECK command against a running daemon in the container.
  health=$(podman image inspect --format '{{json .HealthCheck.Test}}' "$what")
  check=$(python3 -c 'import json, shlex, sys; t = json.loads(sys.argv[1]); assert t[0] == "CMD", t; print(shlex.join(t[1:]))' "$health")
  buildah run --isolation chroot -v "$work/etc:/etc/vecmon:ro" "$container" -- sh -c "
    vecmon run --listen 127.0.0.1:9765 >/tmp/run.log 2>&1 & pid=\$!
    for i in \$(seq 1 40); do $check 2>/dev/null && break; sleep 0.5; done
    $check && echo 'healthcheck: ok' ; rc=\$?
    kill -TERM \$pid; wait \$pid; exit \$rc"
fi
echo "smoke ($mode): ok"
