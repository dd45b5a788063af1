//! The generator's output, checked independently: PostGIS judges the fabric, GDAL's `ogrinfo` opens
//! every format, and the manifest's defect counts are recounted from the files themselves.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use landdb_model::{LandUseCode, ReferenceData};
use landdb_tests::PostgisDb;
use serde_json::Value;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

fn generate(name: &str, args: &[&str]) -> (PathBuf, Value) {
    let out = std::env::temp_dir().join(format!("landdb-gen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(env!("CARGO_BIN_EXE_landdb-gen"))
        .arg("generate")
        .args(args)
        .arg("--out")
        .arg(&out)
        .status()
        .expect("landdb-gen runs");
    assert!(status.success());
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).expect("manifest")).expect("JSON");
    (out, manifest)
}

fn files_of<'a>(manifest: &'a Value, format: &str) -> Vec<&'a Value> {
    manifest["files"].as_array().expect("files").iter().filter(|f| f["options"]["format"] == format).collect()
}

fn defect_count(manifest: &Value, defect: &str) -> u64 {
    manifest["defects"][defect]["count"].as_u64().unwrap_or(0)
}

fn feature_count(path: &Path) -> u64 {
    let out = Command::new("ogrinfo").args(["-so", "-al"]).arg(path).output().expect("ogrinfo runs");
    assert!(out.status.success(), "ogrinfo cannot open {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Feature Count: "))
        .map(|n| n.trim().parse::<u64>().expect("count"))
        .sum()
}

/// A polygon ring as WKT, for PostGIS.
fn wkt(ring: &[Value]) -> String {
    let pts: Vec<String> =
        ring.iter().map(|c| format!("{} {}", c[0].as_f64().expect("x"), c[1].as_f64().expect("y"))).collect();
    format!("POLYGON(({}))", pts.join(","))
}

fn features(path: &Path) -> Vec<Value> {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("file")).expect("GeoJSON");
    doc["features"].as_array().expect("features").clone()
}

#[tokio::test]
async fn a_clean_fabric_is_a_valid_tessellation_in_every_format() {
    let (out, manifest) = generate(
        "clean",
        &[
            "--communes",
            "2",
            "--parcels-per-commune",
            "300",
            "--format",
            "geojson-tm3,geojson,shapefile,gpkg,tab,dxf,esrijson",
        ],
    );
    // Every format opens in GDAL with every record (DXF: a polyline and a label per parcel).
    for file in manifest["files"].as_array().expect("files") {
        let path = out.join(file["path"].as_str().expect("path"));
        let records = file["records"].as_u64().expect("records");
        let expected = if file["options"]["format"] == "dxf" { 2 * records } else { records };
        assert_eq!(feature_count(&path), expected, "{}", path.display());
    }

    let db = PostgisDb::create().await.expect("PostGIS");
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    for file in files_of(&manifest, "geojson-tm3") {
        let rings: Vec<String> = features(&out.join(file["path"].as_str().expect("path")))
            .iter()
            .map(|f| wkt(f["geometry"]["coordinates"][0].as_array().expect("ring")))
            .collect();
        let (n, invalid, sum_area, union_area, overlaps): (i64, i64, f64, f64, i64) = sqlx::query_as(
            "WITH p AS (SELECT row_number() OVER () AS id, ST_GeomFromText(w) AS g FROM unnest($1::text[]) AS w)
             SELECT count(*), count(*) FILTER (WHERE NOT ST_IsValid(g)), sum(ST_Area(g)), ST_Area(ST_Union(g)),
                    (SELECT count(*) FROM p a JOIN p b ON a.id < b.id AND a.g && b.g AND ST_Overlaps(a.g, b.g))
             FROM p",
        )
        .bind(&rings)
        .fetch_one(&mut conn)
        .await
        .expect("PostGIS checks");
        assert_eq!(n as u64, file["records"].as_u64().expect("records"));
        assert_eq!(invalid, 0, "every parcel valid");
        assert_eq!(overlaps, 0, "no parcel overlaps another");
        assert!(
            (sum_area - union_area).abs() < 1e-6 * sum_area,
            "no overlaps in area either: {sum_area} vs {union_area}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test]
async fn every_injected_defect_is_found_where_the_manifest_says() {
    let (out, manifest) = generate(
        "dirty",
        &["--communes", "2", "--parcels-per-commune", "400", "--defects", "all=3", "--format", "geojson-tm3"],
    );
    let reference = ReferenceData::embedded().expect("reference");
    for defect in [
        "self_intersection",
        "unclosed_ring",
        "wrong_orientation",
        "spike",
        "duplicate_vertex",
        "null_geometry",
        "duplicate_key",
        "overlap",
        "sliver",
        "unknown_land_use",
        "obsolete_commune_code",
    ] {
        assert_eq!(defect_count(&manifest, defect), 6, "{defect}: 3 per commune");
    }

    let (mut nulls, mut unclosed, mut repeated, mut duplicate_keys, mut unknown, mut obsolete) = (0, 0, 0, 0, 0, 0);
    let mut closed_rings = Vec::new();
    for file in files_of(&manifest, "geojson-tm3") {
        let commune = file["commune"].as_str().expect("commune");
        let mut keys = HashSet::new();
        for f in features(&out.join(file["path"].as_str().expect("path"))) {
            let p = &f["properties"];
            if !keys.insert((p["MaXa"].clone(), p["SoHieuToBanDo"].clone(), p["SoThuTuThua"].clone())) {
                duplicate_keys += 1;
            }
            let codes = LandUseCode::parse_list(p["KyHieuMucDichSuDung"].as_str().expect("code")).expect("letters");
            if codes
                .iter()
                .any(|c| reference.land_use(c, "legacy").is_none() && reference.land_use(c, "2024").is_none())
            {
                unknown += 1;
            }
            if p["MaXa"] != commune {
                obsolete += 1;
            }
            if f["geometry"].is_null() {
                nulls += 1;
                continue;
            }
            let ring = f["geometry"]["coordinates"][0].as_array().expect("ring").clone();
            let xy = |c: &Value| (c[0].as_f64().expect("x"), c[1].as_f64().expect("y"));
            if ring.first() != ring.last() {
                unclosed += 1;
                continue;
            }
            if ring.windows(2).any(|w| w[0] == w[1]) {
                repeated += 1;
            }
            let signed: f64 = ring
                .windows(2)
                .map(|w| {
                    let (a, b) = (xy(&w[0]), xy(&w[1]));
                    a.0 * b.1 - b.0 * a.1
                })
                .sum();
            closed_rings.push((wkt(&ring), signed < 0.0));
        }
    }
    assert_eq!(nulls, defect_count(&manifest, "null_geometry"));
    assert_eq!(unclosed, defect_count(&manifest, "unclosed_ring"));
    assert_eq!(repeated, defect_count(&manifest, "duplicate_vertex"));
    assert_eq!(duplicate_keys, defect_count(&manifest, "duplicate_key"));
    assert_eq!(unknown, defect_count(&manifest, "unknown_land_use"));
    assert_eq!(obsolete, defect_count(&manifest, "obsolete_commune_code"));

    // PostGIS: the invalid ones are exactly the self-intersections and spikes; of the valid ones,
    // the clockwise are the wrongly oriented ones, and the overlaps come from the pushed vertices.
    let db = PostgisDb::create().await.expect("PostGIS");
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    let wkts: Vec<String> = closed_rings.iter().map(|(w, _)| w.clone()).collect();
    let valid: Vec<bool> = sqlx::query_scalar(
        "SELECT ST_IsValid(ST_GeomFromText(w)) FROM unnest($1::text[]) WITH ORDINALITY AS t(w, i) ORDER BY i",
    )
    .bind(&wkts)
    .fetch_all(&mut conn)
    .await
    .expect("validity");
    let invalid = valid.iter().filter(|v| !**v).count() as u64;
    assert_eq!(invalid, defect_count(&manifest, "self_intersection") + defect_count(&manifest, "spike"));
    let clockwise_valid = closed_rings.iter().zip(&valid).filter(|((_, cw), ok)| *cw && **ok).count() as u64;
    assert_eq!(clockwise_valid, defect_count(&manifest, "wrong_orientation"));
    let valid_wkts: Vec<String> = wkts.iter().zip(&valid).filter(|(_, ok)| **ok).map(|(w, _)| w.clone()).collect();
    let overlapping: i64 = sqlx::query_scalar(
        "WITH p AS (SELECT row_number() OVER () AS id, ST_GeomFromText(w) AS g FROM unnest($1::text[]) AS w)
         SELECT count(*) FROM p a JOIN p b ON a.id < b.id AND a.g && b.g AND ST_Overlaps(a.g, b.g)
         WHERE ST_Area(ST_Intersection(a.g, b.g)) > 0.1",
    )
    .bind(&valid_wkts)
    .fetch_one(&mut conn)
    .await
    .expect("overlaps");
    let overlaps = defect_count(&manifest, "overlap") as i64;
    assert!(
        overlapping >= overlaps && overlapping <= 3 * overlaps,
        "{overlapping} overlapping pairs for {overlaps} overlaps"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn legacy_encodings_reach_the_dbf_bytes() {
    for (encoding, expected) in [("tcvn3", landdb_text::Encoding::Tcvn3), ("vni", landdb_text::Encoding::Vni)] {
        let (out, manifest) = generate(
            encoding,
            &[
                "--communes",
                "1",
                "--parcels-per-commune",
                "60",
                "--format",
                "shapefile,geojson",
                "--encoding",
                encoding,
                "--cpg",
                "absent",
            ],
        );
        let shp = out.join(files_of(&manifest, "shapefile")[0]["path"].as_str().expect("path"));
        assert!(!shp.with_extension("cpg").exists(), "no .cpg, as asked");
        let dbf = std::fs::read(shp.with_extension("dbf")).expect("dbf");
        assert!(std::str::from_utf8(&dbf).is_err(), "{encoding} bytes are not UTF-8");
        // The owners' names decode back to what the GeoJSON says.
        let names: Vec<String> = features(&out.join(files_of(&manifest, "geojson")[0]["path"].as_str().expect("path")))
            .iter()
            .filter_map(|f| f["properties"]["TenChu"].as_str().map(str::to_owned))
            .collect();
        let decoded = landdb_text::decode(&dbf, expected);
        for name in names.iter().take(20) {
            assert!(decoded.contains(name.as_str()), "{name} not in the {encoding} DBF");
        }
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn the_same_seed_gives_the_same_files() {
    let (a, ma) =
        generate("seed-a", &["--communes", "1", "--parcels-per-commune", "200", "--defects", "all=1", "--seed", "7"]);
    let (b, mb) =
        generate("seed-b", &["--communes", "1", "--parcels-per-commune", "200", "--defects", "all=1", "--seed", "7"]);
    assert_eq!(ma["defects"], mb["defects"]);
    let file = ma["files"][0]["path"].as_str().expect("path");
    assert_eq!(std::fs::read(a.join(file)).expect("a"), std::fs::read(b.join(file)).expect("b"));
    let (c, mc) =
        generate("seed-c", &["--communes", "1", "--parcels-per-commune", "200", "--defects", "all=1", "--seed", "8"]);
    assert_ne!(ma["defects"], mc["defects"], "another seed, other parcels");
    for dir in [a, b, c] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
