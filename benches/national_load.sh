#!/usr/bin/env bash
# A national load (issue 22): about 10 million generated parcels of several provinces (500
# communes of 20,000, every province in code order) imported by ONE `landdb import` into a fresh
# PostGIS database: one batch a province, --connections of them at once. Prints the wall time,
# landdb's peak resident memory and CPU, the machine's CPU (landdb and PostgreSQL), and checks
# that the change feed holds one change a version.
#   benches/national_load.sh [communes] [connections] [work dir]   (needs tools/setup; ~15 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
communes=${1:-500}
connections=${2:-2}
work=${3:-/tmp/landdb-national}
db=landdb_national_load
url="postgres://landdb:landdb@127.0.0.1:5432/$db"
source benches/national_set.sh
national_set "$communes" "$work"
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db" \
  -c "CREATE DATABASE $db TEMPLATE landdb_template OWNER landdb"
cpu() { awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6}' /proc/stat; }
read -r busy0 idle0 < <(cpu)
/usr/bin/time -v target/release/landdb --database "$url" --data-keys "$work/data.keys" \
  import --connections "$connections" "$work/files" > "$work/import.log" 2> "$work/time.log"
read -r busy1 idle1 < <(cpu)
hz=$(getconf CLK_TCK)
grep -E "provinces' deliveries|committed" "$work/import.log" | grep -v "^  " | head -40
grep -E "Elapsed|Maximum resident|User time|System time" "$work/time.log"
echo "machine busy: $(( (busy1 - busy0) / hz )) core-seconds, idle $(( (idle1 - idle0) / hz ))"
psql -h 127.0.0.1 -U postgres -d "$db" -Atc \
  "SELECT 'versions ' || (SELECT count(*) FROM parcel_version) || ', changes ' || (SELECT count(*) FROM parcel_change) \
   || ', batches ' || (SELECT count(*) FROM import_batch WHERE committed_at IS NOT NULL) \
   || ', database ' || pg_size_pretty(pg_database_size(current_database()))"
