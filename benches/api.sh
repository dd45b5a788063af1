#!/usr/bin/env bash
# The sharing API under load (issue 6): the Đà Nẵng parcels in a fresh PostGIS database, served
# by `landdb serve`, and by tipg (PyPI) over the same table in the same run; wrk from Debian on
# the same two cores. Point lookups at interior points of 20,000 random parcels (one GeoJSON
# feature each), and ~200 m boxes around them (items, GeoJSON, up to 100 parcels).
#   benches/api.sh [seconds]    (needs tools/setup, ../shared/data/danang, wrk, python3-venv)
# BASELINE_BIN=path/to/older/landdb adds point lookups on that build, interleaved with this one's.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
db=landdb_api_bench
url="postgres://landdb:landdb@127.0.0.1:5432/$db"
work=$(mktemp -d /tmp/landdb-api-bench.XXXXXX)
command -v wrk > /dev/null || sudo apt-get install -y -q wrk
cargo build --release -q -p landdb
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db" \
  -c "CREATE DATABASE $db TEMPLATE landdb_template OWNER landdb"
target/release/landdb import --database "$url" ../shared/data/danang > /dev/null
psql -q -h 127.0.0.1 -U landdb -d "$db" -c "ANALYZE parcel_version"
psql -h 127.0.0.1 -U landdb -d "$db" -Atc "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p \
  FROM current_parcel ORDER BY md5(id::text) LIMIT 20000) q" | tr '|' ' ' > "$work/points.txt"
export POINTS="$work/points.txt"
# Every request carries a key: the national operator's (the whole country, no per-parcel check)
# for the main figures; a province-scoped reader with personal data for the cost of a policy.
landdb() { target/release/landdb --database "$url" "$@"; }
landdb agency add bench-operator --title "Bench operator" --role operator --nation --purpose "benchmark" > /dev/null
landdb agency add bench-province --title "Bench province reader" --role reader --provinces 48 --personal-data \
  --purpose "benchmark" > /dev/null
export LANDDB_KEY; LANDDB_KEY=$(landdb key create bench-operator 2> /dev/null | tail -1)
province_key=$(landdb key create bench-province 2> /dev/null | tail -1)

target/release/landdb serve --database "$url" --listen 127.0.0.1:8181 > "$work/landdb.log" 2>&1 &
landdb_pid=$!
until curl -sf http://127.0.0.1:8181/ready > /dev/null; do sleep 0.2; done
echo "landdb: point lookup"; wrk -t2 -c64 -d"${seconds}s" -s benches/wrk/points.lua http://127.0.0.1:8181 | grep -E "Requests/sec|p50"
echo "landdb: ~200 m box"; wrk -t2 -c64 -d"${seconds}s" -s benches/wrk/boxes.lua http://127.0.0.1:8181 | grep -E "Requests/sec|Transfer|p50"
echo "landdb: point lookup by a province-scoped agency (area check on every parcel, personal data, audit)"
LANDDB_KEY=$province_key wrk -t2 -c64 -d"${seconds}s" -s benches/wrk/points.lua http://127.0.0.1:8181 | grep -E "Requests/sec|p50"
if [ -n "${BASELINE_BIN:-}" ]; then
  # The cost of the access rules: the same lookups on a build without them (BASELINE_BIN, e.g.
  # the issue-6 build) over its own copy of the data (its schema predates the access tables),
  # interleaved with this build's, three rounds, so that the machine's drift hits both alike.
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS ${db}_baseline" \
    -c "CREATE DATABASE ${db}_baseline TEMPLATE landdb_template OWNER landdb"
  "$BASELINE_BIN" import --database "${url}_baseline" ../shared/data/danang > /dev/null
  "$BASELINE_BIN" serve --database "${url}_baseline" --listen 127.0.0.1:8183 > "$work/baseline.log" 2>&1 &
  baseline_pid=$!
  until curl -sf http://127.0.0.1:8183/ready > /dev/null; do sleep 0.2; done
  for round in 1 2 3; do
    echo "round $round: baseline (no access control) / operator key / province-scoped key"
    wrk -t2 -c64 -d"${seconds}s" -s benches/wrk/points.lua http://127.0.0.1:8183 | grep -E "Requests/sec|p50"
    wrk -t2 -c64 -d"${seconds}s" -s benches/wrk/points.lua http://127.0.0.1:8181 | grep -E "Requests/sec|p50"
    LANDDB_KEY=$province_key wrk -t2 -c64 -d"${seconds}s" -s benches/wrk/points.lua http://127.0.0.1:8181 | grep -E "Requests/sec|p50"
  done
  kill "$baseline_pid"; wait "$baseline_pid" || true
fi
echo "landdb: streamed GeoJSON export of every parcel (three runs), server memory before and after"
grep VmRSS "/proc/$landdb_pid/status"
for _ in 1 2 3; do
  curl -s -H "Authorization: Bearer $LANDDB_KEY" -o "$work/export.geojson" \
    -w "%{size_download} bytes in %{time_total} s\n" http://127.0.0.1:8181/collections/parcels/export
done
grep -E "VmRSS|VmHWM" "/proc/$landdb_pid/status"
kill "$landdb_pid"; wait "$landdb_pid" || true
echo "ogr2ogr -f GeoJSON from the same PostGIS view (two runs)"
for _ in 1 2; do
  rm -f "$work/ogr.geojson"
  /usr/bin/time -f "%e s, %M KB peak" ogr2ogr -f GeoJSON "$work/ogr.geojson" \
    PG:"host=127.0.0.1 user=landdb password=landdb dbname=$db" current_parcel
  stat -c "%s bytes" "$work/ogr.geojson"
done

# tipg over the same rows: a table of the current parcels (tipg lists tables and views).
psql -q -h 127.0.0.1 -U landdb -d "$db" -c "DROP TABLE IF EXISTS tipg_parcels" \
  -c "CREATE TABLE tipg_parcels AS SELECT id, national_id, commune_code, sheet, parcel_no, land_use, geometry_area_m2, geom FROM current_parcel" \
  -c "CREATE INDEX ON tipg_parcels USING gist (geom)" -c "ANALYZE tipg_parcels"
venv=${TIPG_VENV:-$work/venv}
[ -x "$venv/bin/uvicorn" ] || { python3 -m venv "$venv"; "$venv/bin/pip" install -q tipg uvicorn; }
DATABASE_URL="$url" TIPG_DB_TABLES='["public.tipg_parcels"]' "$venv/bin/uvicorn" tipg.main:app \
  --host 127.0.0.1 --port 8182 --workers 2 --log-level warning > "$work/tipg.log" 2>&1 &
tipg_pid=$!
until curl -sf http://127.0.0.1:8182/collections > /dev/null; do sleep 0.5; done
echo "tipg: point lookup"
URL_FORMAT="/collections/public.tipg_parcels/items?bbox=%s,%s,%s,%s" wrk -t2 -c64 -d"${seconds}s" \
  -s benches/wrk/points.lua http://127.0.0.1:8182 | grep -E "Requests/sec|p50"
echo "tipg: ~200 m box"
URL_FORMAT="/collections/public.tipg_parcels/items?limit=100&bbox=%.7f,%.7f,%.7f,%.7f" wrk -t2 -c64 -d"${seconds}s" \
  -s benches/wrk/boxes.lua http://127.0.0.1:8182 | grep -E "Requests/sec|Transfer|p50"
kill "$tipg_pid"; wait "$tipg_pid" || true
rm -rf "$work"
