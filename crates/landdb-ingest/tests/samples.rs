//! The pipeline (validate, no store) on the committed data samples, whose manifests say what the
//! generator put in them.

use std::path::PathBuf;

use landdb_ingest::load;
use landdb_ingest::pipeline::{self, ImportReport, Options};
use landdb_ingest::profiles::FieldMapping;
use landdb_ingest::verdict::ReasonCode;
use landdb_ingest::verdict::Verdict;
use landdb_model::Parcel;
use landdb_model::ReferenceData;
use serde_json::Value;

fn samples(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data-samples").join(dir)
}

fn manifest(dir: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(samples(dir).join("manifest.json")).expect("manifest")).expect("JSON")
}

fn injected(manifest: &Value, defect: &str) -> usize {
    manifest["defects"][defect]["count"].as_u64().unwrap_or(0) as usize
}

fn validate(path: PathBuf) -> ImportReport {
    let reference = ReferenceData::embedded().expect("reference");
    let options = Options { crs_override: None, mapping: FieldMapping::builtin().expect("profile"), area: None };
    let scratch = std::env::temp_dir().join(format!("landdb-ingest-test-{}", std::process::id()));
    pipeline::run(&[path], &scratch, &reference, &options, &|_| {}).expect("readable")
}

fn reason(report: &ImportReport, code: ReasonCode) -> usize {
    report.reasons.get(&code).copied().unwrap_or(0)
}

fn assert_totals_add_up(r: &ImportReport) {
    assert_eq!(r.accepted + r.accepted_with_warnings + r.repaired + r.rejected, r.input);
}

#[test]
fn every_defect_of_the_dirty_geojson_is_found() {
    let m = manifest("dirty-geojson");
    let r = validate(samples("dirty-geojson").join("20194.geojson"));
    assert_totals_add_up(&r);
    assert_eq!(r.input, m["records"].as_u64().expect("records") as usize);
    for (code, defect) in [
        (ReasonCode::NullGeometry, "null_geometry"),
        (ReasonCode::SelfIntersection, "self_intersection"),
        (ReasonCode::UnclosedRing, "unclosed_ring"),
        (ReasonCode::Spike, "spike"),
        (ReasonCode::RingOrientation, "wrong_orientation"),
        (ReasonCode::UnknownLandUse, "unknown_land_use"),
        (ReasonCode::ObsoleteCommuneCode, "obsolete_commune_code"),
    ] {
        assert_eq!(reason(&r, code), injected(&m, defect), "{code:?}");
    }
    // Duplicate vertices are injected on their own and also left by a cut-out spike.
    assert!(reason(&r, ReasonCode::DuplicateVertices) >= injected(&m, "duplicate_vertex"));
    // Each injected duplicate rejects both records that share the key (unless one is already rejected).
    let dup = reason(&r, ReasonCode::DuplicateKeyInUpload);
    assert!(dup >= injected(&m, "duplicate_key") && dup <= 2 * injected(&m, "duplicate_key"), "{dup}");
    // A pushed vertex changes the area beyond the tolerance, and both neighbours hear of the overlap.
    assert!(reason(&r, ReasonCode::AreaMismatch) >= injected(&m, "overlap"));
    let overlaps = reason(&r, ReasonCode::Overlap);
    assert!(overlaps >= 2 * injected(&m, "overlap") && overlaps <= 8 * injected(&m, "overlap"), "{overlaps}");
    // Every rejection says why.
    assert!(
        r.records
            .iter()
            .filter(|x| x.verdict == landdb_ingest::verdict::Verdict::Rejected)
            .all(|x| !x.reasons.is_empty())
    );
}

#[test]
fn a_tcvn3_shapefile_without_cpg_or_prj_is_read_right() {
    let r = validate(samples("dirty-tcvn3"));
    assert_totals_add_up(&r);
    let layer = &r.layers[0];
    assert_eq!(layer.encoding.as_ref().map(|e| e.encoding.as_str()), Some("TCVN3"));
    assert_eq!(layer.crs, "EPSG:5899");
    assert!(layer.crs_basis.starts_with("inferred from commune"), "{}", layer.crs_basis);
    assert_eq!(reason(&r, ReasonCode::CrsInferred), r.input, "every record carries the warning");
    assert_eq!(reason(&r, ReasonCode::OutsideVietnam), 0);
}

#[test]
fn a_vni_shapefile_with_a_lying_cpg_and_the_wrong_zone_is_read_right() {
    let r = validate(samples("dirty-vni"));
    let layer = &r.layers[0];
    let encoding = layer.encoding.as_ref().expect("encoding found");
    assert_eq!((encoding.encoding.as_str(), encoding.cpg.as_deref()), ("VNI", Some("UTF-8")));
    assert_eq!(layer.crs, "EPSG:5899", "the commune's zone wins over the .prj's 107°00′");
    assert_eq!(reason(&r, ReasonCode::OutsideVietnam), 0);
}

#[test]
fn every_clean_format_is_read_with_its_crs() {
    for file in ["20194.shp", "20194.gpkg", "20194.tab", "20194.json", "20194.tm3.geojson"] {
        let r = validate(samples("clean").join(file));
        assert_totals_add_up(&r);
        assert_eq!(r.rejected, 0, "{file}: {:?}", r.records.first());
        assert_eq!(r.layers[0].crs, "EPSG:5899", "{file}");
        assert_eq!(r.input, 264, "{file}");
    }
    let r = validate(samples("geojson"));
    assert_eq!((r.accepted, r.input), (2548, 2548));
}

/// The real Đà Nẵng set (skipped when ../shared is absent): every record is accounted for and its
/// known defects are found. Independent counts (a plain script over the files): 79,496 features,
/// 641 records sharing a natural key with another, 3 with `DienTich` 0.
#[test]
fn the_da_nang_set_is_accounted_for_and_its_defects_found() {
    let Some(dir) = landdb_tests_dir() else { return };
    let r = validate(dir);
    assert_eq!(r.input, 79_496);
    assert_totals_add_up(&r);
    assert_eq!(reason(&r, ReasonCode::ZeroArea), 3);
    let self_intersecting = reason(&r, ReasonCode::SelfIntersection);
    assert!(self_intersecting > 0, "the set has self-intersecting parcels");
    // A duplicated record that is also self-intersecting is rejected for that first.
    let duplicates = reason(&r, ReasonCode::DuplicateKeyInUpload);
    assert!(duplicates <= 641 && duplicates + self_intersecting >= 641, "{duplicates}");
    assert_eq!(r.rejected, duplicates + self_intersecting);
    assert_eq!(reason(&r, ReasonCode::OutsideVietnam), 0);
}

fn landdb_tests_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/danang");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent (the Đà Nẵng set is not shipped with landdb)", dir.display());
        None
    }
}

fn ogr2ogr(args: &[&str]) {
    let status =
        std::process::Command::new("ogr2ogr").args(args).stderr(std::process::Stdio::null()).status().expect("ogr2ogr");
    assert!(status.success(), "ogr2ogr {args:?}");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("landdb-forms-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[test]
fn cad_labels_become_attributes() {
    let r = validate(samples("clean").join("20194.dxf"));
    assert_totals_add_up(&r);
    assert_eq!((r.input, r.rejected), (264, 0), "{:?}", r.records.first());
    assert!(r.layers[0].crs_basis.starts_with("inferred from commune"));
}

/// DGN v7 (MicroStation), as GDAL writes it from the DXF: shapes, text labels, and long
/// boundaries split into chains of lines.
#[test]
fn a_dgn_drawing_is_read_like_its_dxf() {
    let dir = scratch("dgn");
    let dgn = dir.join("20194.dgn");
    let dxf = samples("clean").join("20194.dxf");
    ogr2ogr(&["-f", "DGN", dgn.to_str().expect("utf-8"), dxf.to_str().expect("utf-8")]);
    let r = validate(dgn.clone());
    assert_totals_add_up(&r);
    assert_eq!(r.layers[0].driver, "DGN");
    assert_eq!((r.input, r.rejected), (264, 0), "{:?}", r.records.iter().find(|x| x.verdict == Verdict::Rejected));
    let reference = ReferenceData::embedded().expect("reference");
    let from_dgn = load::accepted_parcels(&reference, &[dgn], &dir.join("s")).expect("dgn");
    let from_dxf = load::accepted_parcels(&reference, &[dxf], &dir.join("s")).expect("dxf");
    let keys = |p: &[Parcel]| p.iter().map(|p| p.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&from_dgn), keys(&from_dxf), "the same parcels");
    for (g, x) in from_dgn.iter().zip(&from_dxf) {
        // DGN keeps coordinates as integer units of resolution: vertices move by millimetres.
        assert!(
            (g.geometry_area_m2 - x.geometry_area_m2).abs() < x.geometry_area_m2 * 0.005,
            "{}: {} m² against {} m²",
            g.key,
            g.geometry_area_m2,
            x.geometry_area_m2
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// CP1258 (Windows Vietnamese, tone marks as combining characters) written by GDAL and without
/// its .cpg: detected, and decoded to exactly the text of the UTF-8 original.
#[test]
fn a_cp1258_shapefile_without_cpg_is_decoded_exactly() {
    let dir = scratch("cp1258");
    let shp = dir.join("20194.shp");
    let clean = samples("clean");
    let s = |p: &PathBuf| p.to_str().expect("utf-8").to_owned();
    ogr2ogr(&["-f", "ESRI Shapefile", "-lco", "ENCODING=CP1258", &s(&shp), &s(&clean.join("20194.gpkg"))]);
    std::fs::remove_file(shp.with_extension("cpg")).expect("a .cpg to remove");
    let r = validate(shp.clone());
    let encoding = r.layers[0].encoding.as_ref().expect("encoding reported");
    assert_eq!((encoding.encoding.as_str(), encoding.basis.as_str()), ("CP1258", "detected"));
    assert_eq!((r.input, r.rejected), (264, 0));

    let reference = ReferenceData::embedded().expect("reference");
    let decoded = load::accepted_parcels(&reference, &[shp], &dir.join("s")).expect("cp1258");
    let original = load::accepted_parcels(&reference, &[clean.join("20194.shp")], &dir.join("s")).expect("utf-8");
    assert_eq!(decoded.len(), 264);
    let text = |p: &Parcel| (p.address.clone(), p.right_holders.iter().map(|h| h.name.clone()).collect::<Vec<_>>());
    assert!(original.iter().any(|p| text(p).0.is_some_and(|a| !a.is_ascii())), "the sample has Vietnamese text");
    for (d, o) in decoded.iter().zip(&original) {
        assert_eq!(text(d), text(o), "parcel {}", o.key);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn zipped_shapefiles_kml_csv_with_wkt_and_several_layers_are_read() {
    let dir = scratch("forms");
    let clean = samples("clean");
    let s = |p: &PathBuf| p.to_str().expect("utf-8").to_owned();

    // A zipped Shapefile with its side files.
    let zip_path = dir.join("20194.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).expect("zip"));
    for ext in ["shp", "shx", "dbf", "prj", "cpg"] {
        zip.start_file(format!("20194.{ext}"), zip::write::SimpleFileOptions::default()).expect("entry");
        std::io::Write::write_all(&mut zip, &std::fs::read(clean.join(format!("20194.{ext}"))).expect("side file"))
            .expect("write");
    }
    zip.finish().expect("zip closed");
    let r = validate(zip_path);
    assert_eq!((r.input, r.rejected), (264, 0));

    // KML (WGS84, attributes in ExtendedData).
    let kml = dir.join("20194.kml");
    ogr2ogr(&["-f", "KML", &s(&kml), &s(&clean.join("20194.gpkg"))]);
    let r = validate(kml);
    assert_eq!((r.input, r.rejected), (264, 0), "{:?}", r.records.first());

    // CSV with a WKT column and no CRS at all: the zone comes from the commune.
    let csv = dir.join("20194.csv");
    ogr2ogr(&["-f", "CSV", &s(&csv), &s(&clean.join("20194.gpkg")), "-lco", "GEOMETRY=AS_WKT"]);
    let r = validate(csv);
    assert_eq!((r.input, r.rejected), (264, 0), "{:?}", r.records.first());
    assert_eq!(r.layers[0].crs, "EPSG:5899");

    // A GeoPackage with two layers.
    let multi = dir.join("two.gpkg");
    ogr2ogr(&["-f", "GPKG", &s(&multi), &s(&clean.join("20194.gpkg")), "-nln", "first"]);
    ogr2ogr(&["-f", "GPKG", "-update", &s(&multi), &s(&clean.join("20197.gpkg")), "-nln", "second"]);
    let r = validate(multi);
    assert_eq!(r.layers.len(), 2);
    assert_eq!((r.input, r.rejected), (264 + 282, 0));
    let _ = std::fs::remove_dir_all(&dir);
}
