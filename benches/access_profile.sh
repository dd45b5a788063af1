#!/usr/bin/env bash
# Where a point lookup's CPU goes, counted rather than timed: this noisy 2-core machine moves
# wall-clock figures threefold between rounds, but valgrind's callgrind counts the instructions a
# server executes, the same for the same build and requests whatever else the machine does.
# Each build serves its own copy of the Đà Nẵng parcels under callgrind; after it is ready the
# counters are zeroed, N point lookups are sent one after another on one connection, and the
# instructions a request (the server's) and PostgreSQL's CPU a request (perf's task-clock over
# every PostgreSQL process: the audit log's writes) are printed, with callgrind's profile of the
# requests kept for callgrind_annotate.
#   BASELINE_BIN=<build without access control, e.g. issue 6's> \
#     benches/access_profile.sh [requests] [callers: baseline operator province]
#     (needs tools/setup, ../shared/data/danang, valgrind, linux-perf)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-2000}
shift || true
callers=("$@")
[ ${#callers[@]} -gt 0 ] || callers=(baseline operator province)
: "${BASELINE_BIN:?set BASELINE_BIN to a landdb build without access control}"
command -v valgrind > /dev/null || sudo apt-get install -y -q valgrind
command -v perf > /dev/null || sudo apt-get install -y -q linux-perf
cargo build --release -q -p landdb
work=$(mktemp -d /tmp/landdb-access-profile.XXXXXX)
base="postgres://landdb:landdb@127.0.0.1:5432"
port=8199

# profile NAME BIN KEY_ARGS...: one build, one caller ("none" for no key).
profile() {
  local name=$1 bin=$2 role=$3 db=landdb_access_profile
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db" \
    -c "CREATE DATABASE $db TEMPLATE landdb_template OWNER landdb"
  "$bin" import --database "$base/$db" ../shared/data/danang > /dev/null 2>&1
  local key=""
  case $role in
    operator)
      "$bin" --database "$base/$db" agency add bench --title "Bench operator" --role operator --nation \
        --purpose benchmark > /dev/null 2>&1 ;;
    province)
      "$bin" --database "$base/$db" agency add bench --title "Bench province reader" --role reader \
        --provinces 48 --personal-data --purpose benchmark > /dev/null 2>&1 ;;
  esac
  [ "$role" = none ] || key=$("$bin" --database "$base/$db" key create bench 2> /dev/null | tail -1)
  psql -q -h 127.0.0.1 -U postgres -d $db -c "VACUUM (ANALYZE)"
  psql -q -h 127.0.0.1 -U postgres -c CHECKPOINT
  valgrind --tool=callgrind --callgrind-out-file="$work/$name.callgrind" \
    "$bin" serve --database "$base/$db" --listen "127.0.0.1:$port" > "$work/$name.log" 2>&1 &
  local pid=$!
  until curl -sf "http://127.0.0.1:$port/ready" > /dev/null; do sleep 1; done
  # The requests' URLs, as a curl config: one connection, one request after another. The same
  # parcels in every run (by national ID: row ids follow the import's parallel order).
  psql -h 127.0.0.1 -U landdb -d $db -Atc "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p \
    FROM current_parcel ORDER BY md5(national_id), id LIMIT $requests) q" |
    awk -F'|' -v port=$port '{printf "url = \"http://127.0.0.1:%s/parcels/at?lon=%s&lat=%s\"\noutput = /dev/null\n", port, $1, $2}' \
      > "$work/urls.conf"
  local auth=()
  [ -z "$key" ] || auth=(-H "Authorization: Bearer $key")
  curl -s "${auth[@]}" --config <(head -n 200 "$work/urls.conf") # warm-up
  sleep 2
  callgrind_control -z "$pid" > /dev/null
  perf stat -x, -e task-clock -o "$work/$name.pg" -p "$(pgrep -d, -x postgres)" &
  local perf_pid=$!
  curl -s -w '%{http_code}\n' "${auth[@]}" --config "$work/urls.conf" | sort | uniq -c | tr '\n' ' ' > "$work/$name.codes"
  sleep 3 # the audit writer's last block
  kill -INT $perf_pid
  wait $perf_pid 2> /dev/null || true
  callgrind_control -d "$pid" > /dev/null
  kill "$pid"
  wait "$pid" 2> /dev/null || true
  local dump
  dump="$work/$name.callgrind.1"
  local ir
  ir=$(callgrind_annotate "$dump" 2> /dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
  local pg_ms
  pg_ms=$(awk -F, '/task-clock/ {print $1}' "$work/$name.pg")
  printf '%-10s %9.0f instructions a request (server), %6.1f µs PostgreSQL CPU a request; answers: %s\n' \
    "$name" "$(echo "$ir / $requests" | bc -l)" "$(echo "$pg_ms * 1000 / $requests" | bc -l)" "$(cat "$work/$name.codes")"
  cp "$dump" "$work/$name.requests.callgrind"
}

for caller in "${callers[@]}"; do
  case $caller in
    baseline) profile baseline "$BASELINE_BIN" none ;;
    *) profile "$caller" target/release/landdb "$caller" ;;
  esac
done
echo "profiles: $work/*.requests.callgrind (callgrind_annotate --inclusive=yes FILE)"
