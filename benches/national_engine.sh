#!/usr/bin/env bash
# The engine at national scale (issue 5): about 10 million generated parcels (500 communes of
# 20,000, every province) imported into a fresh PostGIS database 50 communes per batch, then the
# engine_load bench on it: build time from the store and from a snapshot file, bytes a parcel.
#   benches/national_engine.sh [communes] [work dir]   (needs tools/setup done; 30-40 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
communes=${1:-500}
work=${2:-/tmp/landdb-national}
db=landdb_national
url="postgres://landdb:landdb@127.0.0.1:5432/$db"
source benches/national_set.sh
national_set "$communes" "$work"
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db" \
  -c "CREATE DATABASE $db TEMPLATE landdb_template OWNER landdb"
mapfile -t files < <(ls "$work"/files/*.geojson)
for ((i = 0; i < ${#files[@]}; i += 50)); do
  /usr/bin/time -f "batch $i: %e s, %M KB" \
    target/release/landdb import --database "$url" "${files[@]:i:50}" > /dev/null
done
LANDDB_BENCH_DATABASE="$url" cargo bench -q -p landdb-benches --bench engine_load
