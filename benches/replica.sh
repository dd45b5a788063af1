#!/usr/bin/env bash
# Issue 22's target for read replicas: point lookups through a server reading from a streaming
# standby within 10 % of those through a server on the primary. One database (the Đà Nẵng
# parcels) on this machine's cluster, a standby of the cluster made with `pg_basebackup -R` on
# port 5499, and two `landdb serve` processes: one on the primary, one with --read-database on
# the standby; wrk asks each for the same points in turn, three rounds.
#   benches/replica.sh    (needs tools/setup, ../shared/data/danang, wrk; runs as root)
set -euo pipefail
cd "$(dirname "$0")/.."
danang=../shared/data/danang
[ -d "$danang" ] || { echo "replica.sh: $danang is absent; nothing to measure"; exit 0; }
command -v wrk > /dev/null || apt-get install -y -q wrk
cargo build --release -q -p landdb
bin=target/release/landdb
base="postgres://landdb:landdb@127.0.0.1:5432"
db=landdb_replica_bench
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db TEMPLATE landdb_template OWNER landdb"
"$bin" import --database "$base/$db" "$danang" > /dev/null 2>&1
"$bin" --database "$base/$db" agency add bench-operator --title "Bench operator" --role operator --nation --purpose benchmark > /dev/null 2>&1
key=$("$bin" --database "$base/$db" key create bench-operator 2> /dev/null | tail -1)
psql -q -h 127.0.0.1 -U postgres -d $db -c "VACUUM (ANALYZE)"

# The standby: the whole cluster, its own configuration (Debian keeps the primary's in /etc).
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
standby=$(mktemp -d /tmp/landdb-replica-bench.XXXXXX)
chown postgres:postgres "$standby"; chmod 700 "$standby"
runuser -u postgres -- "$pgbin/pg_basebackup" -D "$standby" -R -X stream -c fast
cp "$(runuser -u postgres -- psql -tAc 'SHOW hba_file')" "$standby/pg_hba.conf"; touch "$standby/pg_ident.conf"
printf "port = 5499\nlisten_addresses = '127.0.0.1'\nhot_standby = on\nshared_buffers = 128MB\n" > "$standby/postgresql.conf"
chown -R postgres:postgres "$standby"
runuser -u postgres -- "$pgbin/pg_ctl" -D "$standby" -l "$standby/log" -w start > /dev/null

"$bin" serve --database "$base/$db" --listen 127.0.0.1:8311 --audit-spool "$standby.primary.spool" > "$standby.primary.log" 2>&1 &
primary=$!
"$bin" serve --database "$base/$db" --read-database "postgres://landdb:landdb@127.0.0.1:5499/$db" \
  --listen 127.0.0.1:8312 --audit-spool "$standby.replica.spool" > "$standby.replica.log" 2>&1 &
replica=$!
trap 'kill $primary $replica 2> /dev/null || true; sleep 1; runuser -u postgres -- "$pgbin/pg_ctl" -D "$standby" -m immediate stop > /dev/null 2>&1 || true; rm -rf "$standby" "$standby".*' EXIT
until curl -sf http://127.0.0.1:8311/ready > /dev/null; do sleep 0.2; done
until curl -sf http://127.0.0.1:8312/ready > /dev/null; do sleep 0.2; done
echo "replica server's health: $(curl -s http://127.0.0.1:8312/health)"

psql -h 127.0.0.1 -U landdb -d $db -Atc "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM current_parcel ORDER BY md5(id::text) LIMIT 20000) q" | tr '|' ' ' > "$standby.points"
lookups() { POINTS="$standby.points" LANDDB_KEY=$key wrk -t2 -c64 -d"$2"s -s benches/wrk/points.lua "$1" | awk '/Requests\/sec/ {print $2}'; }
lookups http://127.0.0.1:8311 2 > /dev/null
lookups http://127.0.0.1:8312 2 > /dev/null
for round in 1 2 3; do
  p=$(lookups http://127.0.0.1:8311 8)
  r=$(lookups http://127.0.0.1:8312 8)
  printf 'round %d: through the primary %s/s, through the standby %s/s; standby/primary %.3f\n' "$round" "$p" "$r" "$(echo "$r / $p" | bc -l)"
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); $(date -u +%F)"
