# Sourced by the national-scale benches: the release builds of landdb and landdb-gen, and the
# generated set they load.
#   national_set COMMUNES WORK: COMMUNES communes of 20,000 parcels (every province, in code
#   order) as GeoJSON in WORK/files, generated unless a set of that many communes is there.
national_set() {
  local communes=$1 work=$2
  cargo build --release -q -p landdb-gen -p landdb
  local made
  made=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['arguments']['communes'])" \
    "$work/files/manifest.json" 2> /dev/null || true)
  if [ "$made" != "$communes" ]; then
    rm -rf "$work/files"
    mkdir -p "$work/files"
    target/release/landdb-gen generate --province all --communes "$communes" \
      --parcels-per-commune 20000 --format geojson --out "$work/files" > "$work/generate.log"
  fi
}
