#!/usr/bin/env bash
# Generation rate and peak memory of landdb-gen at national scale (issue 3): N communes of
# 20,000 parcels across all provinces, GeoJSON out, streamed one commune at a time.
#   benches/generate_national.sh [communes]   (500 communes = 10 million parcels + roads)
set -euo pipefail
cd "$(dirname "$0")/.."
communes=${1:-500}
out=$(mktemp -d /tmp/landdb-national.XXXXXX)
cargo build --release -q -p landdb-gen
start=$(date +%s.%N)
/usr/bin/time -v target/release/landdb-gen generate --province all --communes "$communes" \
  --parcels-per-commune 20000 --format geojson --out "$out" 2> "$out/time.log" >/dev/null
end=$(date +%s.%N)
records=$(python3 -c "import json,sys; print(json.load(open('$out/manifest.json'))['records'])")
rss=$(grep "Maximum resident set size" "$out/time.log" | awk '{print $NF}')
secs=$(echo "$end - $start" | bc)
echo "communes: $communes, records: $records, time: ${secs}s, rate: $(echo "$records / $secs" | bc) records/s, peak RSS: $((rss / 1024)) MiB, output: $(du -sh "$out" | cut -f1)"
rm -rf "$out"
