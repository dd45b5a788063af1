#!/usr/bin/env bash
# The cost of access control and audit (issue 7 target: point lookups within 10 % of the figure
# without them), measured the only way this noisy 2-core machine allows: builds run side by side
# over their own copies of the Đà Nẵng parcels, and point lookups sent to each in turn, round after
# round, so that the machine's drift hits all alike. This build is asked with two keys: the
# national operator's and a province reader's (area check, personal data). Prints each round's
# throughput and CPU per request (the server and every PostgreSQL process, from /proc), then
# the median ratios to the baseline.
# With PIN=1 the servers run on the first core and wrk on the second: the throughput is then the
# server's own (and PostgreSQL's), without wrk's share of the same cores in it.
#   BASELINE_BIN=<build without access control, e.g. issue 6's> [OTHER_BIN=<another build>] [PIN=1] \
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
server_cpu=() load_cpu=() load_threads=2
if [ -n "${PIN:-}" ]; then server_cpu=(taskset -c 0) load_cpu=(taskset -c 1) load_threads=1; fi
# The servers: the baseline build, this one and, when given, another. Each has its own database.
builds=(baseline this)
bins=("$BASELINE_BIN" target/release/landdb)
if [ -n "${OTHER_BIN:-}" ]; then builds+=(other); bins+=("$OTHER_BIN"); fi
# What is measured: a caller of a server. This build (and the other) is asked by the national
# operator (the whole country: the rules, no per-parcel area check) and by a province reader
# (Đà Nẵng's area checked for every parcel, personal data disclosed and indexed in the log).
callers=(baseline operator province)
server=(0 1 1)
if [ -n "${OTHER_BIN:-}" ]; then callers+=(other); server+=(2); fi
pids=()
for i in "${!builds[@]}"; do
  db=landdb_access_ab_${builds[$i]}
  bin=${bins[$i]}
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db" \
    -c "CREATE DATABASE $db TEMPLATE landdb_template OWNER landdb"
  "$bin" import --database "$base/$db" ../shared/data/danang > /dev/null 2>&1
  if [ "$i" -gt 0 ]; then
    "$bin" --database "$base/$db" agency add bench-operator --title "Bench operator" --role operator \
      --nation --purpose "benchmark" > /dev/null 2>&1
    "$bin" --database "$base/$db" key create bench-operator 2> /dev/null | tail -1 > "$work/${builds[$i]}.operator.key"
  fi
  if [ "${builds[$i]}" = this ]; then # only this build is asked by the province reader
    "$bin" --database "$base/$db" agency add bench-province --title "Bench province reader" --role reader \
      --provinces 48 --personal-data --purpose "benchmark" > /dev/null 2>&1
    "$bin" --database "$base/$db" key create bench-province 2> /dev/null | tail -1 > "$work/this.province.key"
  fi
  "${server_cpu[@]}" "$bin" serve --database "$base/$db" --listen "127.0.0.1:$((8190 + i))" > "$work/${builds[$i]}.log" 2>&1 &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2> /dev/null || true' EXIT
key() { # the key caller $1 sends ("none" for the baseline, which takes none)
  case ${callers[$1]} in
    baseline) echo none ;;
    operator) cat "$work/this.operator.key" ;;
    province) cat "$work/this.province.key" ;;
    other) cat "$work/other.operator.key" ;;
  esac
}
# The imports leave autovacuum and a checkpoint to come: done now, not inside the first rounds.
for name in "${builds[@]}"; do psql -q -h 127.0.0.1 -U postgres -d "landdb_access_ab_$name" -c "VACUUM (ANALYZE)"; done
psql -q -h 127.0.0.1 -U postgres -c CHECKPOINT
for i in "${!builds[@]}"; do until curl -sf "http://127.0.0.1:$((8190 + i))/ready" > /dev/null; do sleep 0.2; done; done
psql -h 127.0.0.1 -U landdb -d landdb_access_ab_this -Atc "SELECT ST_X(p), ST_Y(p) FROM (SELECT \
  ST_PointOnSurface(geom) p FROM current_parcel ORDER BY md5(id::text) LIMIT 20000) q" | tr '|' ' ' > "$work/points.txt"
export POINTS="$work/points.txt"
for c in "${!callers[@]}"; do # warm-up
  LANDDB_KEY=$(key "$c") "${load_cpu[@]}" wrk -t$load_threads -c64 -d2s -s benches/wrk/points.lua "http://127.0.0.1:$((8190 + server[c]))" > /dev/null
done

ticks() { # CPU ticks of the server $1, then of every PostgreSQL process
  local pg=0
  for p in $(pgrep -x postgres); do pg=$((pg + $(awk '{print $14 + $15}' "/proc/$p/stat" 2> /dev/null || echo 0))); done
  echo "$(awk '{print $14 + $15}' "/proc/$1/stat") $pg"
}
echo "round, then for each caller: requests/s and CPU µs a request (the server's + PostgreSQL's) (${callers[*]})"
for round in $(seq "$rounds"); do
  line="round $round:"
  # Each round starts with the next caller: a server's audit writes finish after its run, so the
  # run after it carries a little of them; turn by turn every caller comes after every other.
  n=${#callers[@]}
  for k in $(seq 0 $((n - 1))); do
    c=$(((k + round) % n))
    pid=${pids[${server[$c]}]}
    read -r s0 p0 < <(ticks "$pid")
    rps=$(LANDDB_KEY=$(key "$c") "${load_cpu[@]}" wrk -t$load_threads -c64 -d"${seconds}s" -s benches/wrk/points.lua \
      "http://127.0.0.1:$((8190 + server[c]))" | awk '/Requests\/sec/ {print $2}')
    read -r s1 p1 < <(ticks "$pid")
    per_request() { echo "scale=1; $1 * 1000000 / $(getconf CLK_TCK) / ($rps * $seconds)" | bc; }
    line="$line ${callers[$c]} $rps $(per_request $((s1 - s0 + p1 - p0)))µs ($(per_request $((s1 - s0))) + $(per_request $((p1 - p0))))"
  done
  echo "$line" | tee -a "$work/rounds.txt"
done
python3 - "$work/rounds.txt" <<'EOF'
import re, statistics, sys
runs = [{n: (float(r), float(c), float(s), float(p)) for n, r, c, s, p in
         re.findall(r'(\w+) ([\d.]+) ([\d.]+)µs \(([\d.]+) \+ ([\d.]+)\)', l)} for l in open(sys.argv[1])]
for name in [n for n in runs[0] if n != 'baseline']:
    ratios = [r[name][0] / r['baseline'][0] for r in runs]
    cpu = [r[name][1] / r['baseline'][1] for r in runs]
    extra = [(r[name][2] - r['baseline'][2], r[name][3] - r['baseline'][3]) for r in runs]
    print(f"{name} / baseline: throughput median {statistics.median(ratios):.3f} (mean {statistics.mean(ratios):.3f}, "
          f"{min(ratios):.3f}-{max(ratios):.3f}), CPU a request median {statistics.median(cpu):.3f} "
          f"(extra µs a request: server {statistics.median(e[0] for e in extra):.1f}, "
          f"PostgreSQL {statistics.median(e[1] for e in extra):.1f}), over {len(runs)} rounds")
EOF
