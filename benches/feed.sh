#!/usr/bin/env bash
# Issue 20's targets for the change feed, on the Đà Nẵng parcels:
#  1. the first snapshot of a scope read through the feed, against the streamed
#     GeoJSON export of the same scope with the same key (target: at least half its speed; the
#     scope here is the province, about 80,000 parcels);
#  2. `landdb sync --once` of that snapshot into PostGIS, beside ogr2ogr loading the export file
#     into the same database (the peer), and into landdb's embedded store;
#  3. 10,000 changes end to end: landdb-gen parcels imported into communes of the scope, then
#     `landdb sync --once` from the copy's token (target: within 2 s), into PostGIS and into the
#     embedded store;
#  4. point lookups with and without 100 followers long-polling the feed (target: at most 10 %
#     fewer lookups a second).
#   benches/feed.sh      (needs tools/setup, ../shared/data/danang, wrk, ogr2ogr)
set -euo pipefail
cd "$(dirname "$0")/.."
danang=../shared/data/danang
[ -d "$danang" ] || { echo "feed.sh: $danang is absent; nothing to measure"; exit 0; }
command -v wrk > /dev/null || sudo apt-get install -y -q wrk
cargo build --release -q -p landdb -p landdb-gen
bin=target/release/landdb
work=$(mktemp -d /tmp/landdb-feed-bench.XXXXXX)
base="postgres://landdb:landdb@127.0.0.1:5432"
db=landdb_feed_bench
copy=landdb_feed_copy
for d in $db $copy; do
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" -c "CREATE DATABASE $d TEMPLATE landdb_template OWNER landdb"
done
"$bin" import --database "$base/$db" "$danang" > /dev/null 2>&1
# About 10,000 new parcels in three of the province's communes (landdb-gen's first three).
target/release/landdb-gen generate --province 48 --communes 3 --parcels-per-commune 3300 --out "$work/new" > /dev/null
# The scope: the province (every Đà Nẵng parcel, about twice the issue's 40,000, and the
# generated communes); the province is checked parcel by parcel, as for any scoped agency.
"$bin" --database "$base/$db" agency add bench-follower --title "Bench follower" --role surveyor \
  --provinces 48 --operations lookup,items,export --purpose benchmark > /dev/null
key=$("$bin" --database "$base/$db" key create bench-follower 2> /dev/null | tail -1)
"$bin" --database "$base/$db" agency add bench-operator --title "Bench operator" --role operator --nation --purpose benchmark > /dev/null 2>&1
operator=$("$bin" --database "$base/$db" key create bench-operator 2> /dev/null | tail -1)
psql -q -h 127.0.0.1 -U postgres -d $db -c "VACUUM (ANALYZE)"
"$bin" serve --database "$base/$db" --listen 127.0.0.1:8290 > "$work/serve.log" 2>&1 &
server=$!
followers=()
trap 'kill $server "${followers[@]}" 2> /dev/null || true' EXIT
until curl -sf http://127.0.0.1:8290/ready > /dev/null; do sleep 0.2; done
url=http://127.0.0.1:8290
scope=$(psql -h 127.0.0.1 -U landdb -d $db -Atc "SELECT count(*) FROM current_parcel")
echo "scope: $scope parcels (province 48)"
now() { date +%s.%N; }

# 1. The snapshot through the feed, pages of 10,000, against the export: one client process
#    each, one connection (benches/feed_read.py), three rounds.
python3 benches/feed_read.py "$url" "$key" 3
curl -sf -H "Authorization: Bearer $key" -o "$work/export.geojson" "$url/collections/parcels/export?f=geojson"

# 2. The first snapshot into PostGIS with landdb sync, and ogr2ogr loading the export (the peer).
t0=$(now)
"$bin" sync "$url" --key "$key" --into "$base/$copy" --once --limit 5000 > "$work/sync1.txt"
t1=$(now)
ogr2ogr -f PostgreSQL "PG:host=127.0.0.1 user=landdb password=landdb dbname=$copy" "$work/export.geojson" -nln ogr_peer -overwrite -lco SPATIAL_INDEX=GIST --config PG_USE_COPY YES
t2=$(now)
printf 'landdb sync, first snapshot into PostGIS: %.2f s (%s); ogr2ogr of the export into PostGIS: %.2f s\n' \
  "$(echo "$t1 - $t0" | bc -l)" "$(tail -1 "$work/sync1.txt" | sed 's/.*; //')" "$(echo "$t2 - $t1" | bc -l)"
t0=$(now)
"$bin" sync "$url" --key "$key" --into "$work/copy.sqlite" --once --limit 5000 > "$work/sync1e.txt"
t1=$(now)
printf 'landdb sync, first snapshot into the embedded store: %.2f s\n' "$(echo "$t1 - $t0" | bc -l)"

# 3. 10,000 changes end to end: imported, then followed into the copy.
"$bin" import --database "$base/$db" "$work/new" > "$work/import.txt" 2>&1 || true
head=$(psql -h 127.0.0.1 -U landdb -d $db -Atc "SELECT max(seq) FROM parcel_change")
sleep 1 # the server's engine follows the import
t0=$(now)
"$bin" sync "$url" --key "$key" --into "$base/$copy" --once --limit 5000 > "$work/sync2.txt"
t1=$(now)
printf '10,000 changes end to end (feed → landdb sync → PostGIS): %.2f s: %s\n' "$(echo "$t1 - $t0" | bc -l)" "$(tail -1 "$work/sync2.txt")"
t0=$(now)
"$bin" sync "$url" --key "$key" --into "$work/copy.sqlite" --once --limit 5000 > "$work/sync2e.txt"
t1=$(now)
printf '10,000 changes end to end (feed → landdb sync → embedded store): %.2f s: %s\n' "$(echo "$t1 - $t0" | bc -l)" "$(tail -1 "$work/sync2e.txt")"

# 4. Point lookups, alone and beside 100 followers long-polling.
psql -h 127.0.0.1 -U landdb -d $db -Atc "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM current_parcel ORDER BY md5(id::text) LIMIT 20000) q" | tr '|' ' ' > "$work/points.txt"
lookups() { POINTS="$work/points.txt" LANDDB_KEY=$operator wrk -t2 -c64 -d"$1"s -s benches/wrk/points.lua "$url" | awk '/Requests\/sec/ {print $2}'; }
lookups 2 > /dev/null
alone=$(lookups 8)
# A follower: reads to the end of the feed, then long-polls, each answer's token the next ask's.
follower() {
  local after="" answer
  while :; do
    answer=$(curl -s -H "Authorization: Bearer $key" "$url/collections/parcels/changes?limit=10000&wait=30$after" | tail -c 800)
    after="&after=$(echo "$answer" | grep -o '"next":"[0-9a-f]*"' | cut -d'"' -f4)"
  done
}
for i in $(seq 100); do
  follower &
  followers+=($!)
done
sleep 30 # every follower through the snapshot and waiting
beside=$(lookups 8)
kill "${followers[@]}" 2> /dev/null || true
followers=()
again=$(lookups 8)
printf 'point lookups: %s/s alone, %s/s beside 100 followers, %s/s alone again; ratio %.3f\n' "$alone" "$beside" "$again" \
  "$(echo "$beside * 2 / ($alone + $again)" | bc -l)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F)"
