#!/usr/bin/env bash
# The cost of access control and audit (issue 7 target: point lookups within 10 % of the figure
# without them), measured the only way this noisy 2-core machine allows: builds run side by side
# over their own copies of the Đà Nẵng parcels, and point lookups sent to each in turn, round after
# round, so that the machine's drift hits all alike. Prints each round's throughput and CPU per
# request (the server and every PostgreSQL process, from /proc), then the median ratios.
#   BASELINE_BIN=<build without access control, e.g. issue 6's> [OTHER_BIN=<another build>] \
#     benches/access_ab.sh [rounds] [seconds]      (needs tools/setup, ../shared/data/danang, wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
seconds=${2:-6}
: "${BASELINE_BIN:?set BASELINE_BIN to a landdb build without access control}"
work=$(mktemp -d /tmp/landdb-access-ab.XXXXXX)
command -v wrk > /dev/null || sudo apt-get install -y -q wrk
cargo build --release -q -p landdb
base="postgres://landdb:landdb@127.0.0.1:5432"
names=(baseline this)
bins=("$BASELINE_BIN" target/release/landdb)
if [ -n "${OTHER_BIN:-}" ]; then names+=(other); bins+=("$OTHER_BIN"); fi
pids=()
for i in "${!names[@]}"; do
  db=landdb_access_ab_${names[$i]}
  bin=${bins[$i]}
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db" \
    -c "CREATE DATABASE $db TEMPLATE landdb_template OWNER landdb"
  "$bin" import --database "$base/$db" ../shared/data/danang > /dev/null 2>&1
  if [ "$i" -gt 0 ]; then
    # The national operator's key (the whole country: the rules, no per-parcel area check).
    "$bin" --database "$base/$db" agency add bench-operator --title "Bench operator" --role operator \
      --nation --purpose "benchmark" > /dev/null 2>&1
    "$bin" --database "$base/$db" key create bench-operator 2> /dev/null | tail -1 > "$work/${names[$i]}.key"
  else
    echo none > "$work/baseline.key"
  fi
  "$bin" serve --database "$base/$db" --listen "127.0.0.1:$((8190 + i))" > "$work/${names[$i]}.log" 2>&1 &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2> /dev/null || true' EXIT
# The imports leave autovacuum and a checkpoint to come: done now, not inside the first rounds.
for name in "${names[@]}"; do psql -q -h 127.0.0.1 -U landdb -d "landdb_access_ab_$name" -c "VACUUM (ANALYZE)"; done
psql -q -h 127.0.0.1 -U postgres -c CHECKPOINT
for i in "${!names[@]}"; do until curl -sf "http://127.0.0.1:$((8190 + i))/ready" > /dev/null; do sleep 0.2; done; done
psql -h 127.0.0.1 -U landdb -d landdb_access_ab_this -Atc "SELECT ST_X(p), ST_Y(p) FROM (SELECT \
  ST_PointOnSurface(geom) p FROM current_parcel ORDER BY md5(id::text) LIMIT 20000) q" | tr '|' ' ' > "$work/points.txt"
export POINTS="$work/points.txt"
for i in "${!names[@]}"; do # warm-up
  LANDDB_KEY=$(cat "$work/${names[$i]}.key") wrk -t2 -c64 -d2s -s benches/wrk/points.lua "http://127.0.0.1:$((8190 + i))" > /dev/null
done

ticks() { # CPU ticks of the server $1 and of every PostgreSQL process
  local t=0
  for p in "$1" $(pgrep -x postgres); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2> /dev/null || echo 0))); done
  echo "$t"
}
echo "round, then for each build: requests/s and CPU µs a request (${names[*]})"
for round in $(seq "$rounds"); do
  line="round $round:"
  # Each round starts with the next build: a build's audit writes finish after its run, so the
  # run after it carries a little of them; turn by turn every build comes after every other.
  n=${#names[@]}
  for k in $(seq 0 $((n - 1))); do
    i=$(((k + round) % n))
    t0=$(ticks "${pids[$i]}")
    rps=$(LANDDB_KEY=$(cat "$work/${names[$i]}.key") wrk -t2 -c64 -d"${seconds}s" -s benches/wrk/points.lua \
      "http://127.0.0.1:$((8190 + i))" | awk '/Requests\/sec/ {print $2}')
    t1=$(ticks "${pids[$i]}")
    cpu=$(echo "scale=1; ($t1 - $t0) * 1000000 / $(getconf CLK_TCK) / ($rps * $seconds)" | bc)
    line="$line ${names[$i]} $rps ${cpu}µs"
  done
  echo "$line" | tee -a "$work/rounds.txt"
done
python3 - "$work/rounds.txt" <<'EOF'
import re, statistics, sys
runs = [{n: (float(r), float(c)) for n, r, c in re.findall(r'(\w+) ([\d.]+) ([\d.]+)µs', l)} for l in open(sys.argv[1])]
for name in [n for n in runs[0] if n != 'baseline']:
    ratios = [r[name][0] / r['baseline'][0] for r in runs]
    cpu = [r[name][1] / r['baseline'][1] for r in runs]
    print(f"{name} / baseline: throughput median {statistics.median(ratios):.3f} (mean {statistics.mean(ratios):.3f}, "
          f"{min(ratios):.3f}-{max(ratios):.3f}), CPU a request median {statistics.median(cpu):.3f}, over {len(runs)} rounds")
EOF
