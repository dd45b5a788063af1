#!/usr/bin/env bash
# Issue 21's target for HTTPS: point-lookup throughput over TLS within 25 % of plain HTTP.
# One database (the Đà Nẵng parcels), two `landdb serve` processes over it, one plain and one
# with --tls-cert/--tls-key (a certificate of a CA made here with openssl); wrk asks each for
# the same points in turn, three rounds, keep-alive connections (as a platform's adapter keeps
# them), and the ratio of each round is printed.
#   benches/tls.sh      (needs tools/setup, ../shared/data/danang, wrk, openssl)
set -euo pipefail
cd "$(dirname "$0")/.."
danang=../shared/data/danang
[ -d "$danang" ] || { echo "tls.sh: $danang is absent; nothing to measure"; exit 0; }
command -v wrk > /dev/null || apt-get install -y -q wrk
cargo build --release -q -p landdb
bin=target/release/landdb
work=$(mktemp -d /tmp/landdb-tls-bench.XXXXXX)
base="postgres://landdb:landdb@127.0.0.1:5432"
db=landdb_tls_bench
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db TEMPLATE landdb_template OWNER landdb"
"$bin" import --database "$base/$db" "$danang" > /dev/null 2>&1
"$bin" --database "$base/$db" agency add bench-operator --title "Bench operator" --role operator --nation --purpose benchmark > /dev/null 2>&1
key=$("$bin" --database "$base/$db" key create bench-operator 2> /dev/null | tail -1)
psql -q -h 127.0.0.1 -U postgres -d $db -c "VACUUM (ANALYZE)"

# A CA and the server's certificate (EC P-256, as a platform would issue).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
  -keyout "$work/ca-key.pem" -out "$work/ca.pem" 2> /dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$work/server-key.pem" -out "$work/server.csr" 2> /dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$work/ext.txt"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" -CAcreateserial \
  -days 2 -extfile "$work/ext.txt" -out "$work/server.pem" 2> /dev/null

"$bin" serve --database "$base/$db" --listen 127.0.0.1:8301 > "$work/plain.log" 2>&1 &
plain=$!
"$bin" serve --database "$base/$db" --listen 127.0.0.1:8302 --tls-cert "$work/server.pem" --tls-key "$work/server-key.pem" > "$work/tls.log" 2>&1 &
tls=$!
trap 'kill $plain $tls 2> /dev/null || true' EXIT
until curl -sf http://127.0.0.1:8301/ready > /dev/null; do sleep 0.2; done
until curl -sf --cacert "$work/ca.pem" https://localhost:8302/ready > /dev/null; do sleep 0.2; done
echo "HTTP version over TLS (curl): $(curl -s -o /dev/null -w '%{http_version}' --cacert "$work/ca.pem" https://localhost:8302/)"

psql -h 127.0.0.1 -U landdb -d $db -Atc "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM current_parcel ORDER BY md5(id::text) LIMIT 20000) q" | tr '|' ' ' > "$work/points.txt"
lookups() { POINTS="$work/points.txt" LANDDB_KEY=$key wrk -t2 -c64 -d"$2"s -s benches/wrk/points.lua "$1" | awk '/Requests\/sec/ {print $2}'; }
lookups http://127.0.0.1:8301 2 > /dev/null
lookups https://127.0.0.1:8302 2 > /dev/null
for round in 1 2 3; do
  p=$(lookups http://127.0.0.1:8301 8)
  t=$(lookups https://127.0.0.1:8302 8)
  printf 'round %d: plain %s/s, TLS %s/s; TLS/plain %.3f\n' "$round" "$p" "$t" "$(echo "$t / $p" | bc -l)"
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); $(date -u +%F)"
rm -rf "$work"
