//! Every rejection reason, each from a record made to have exactly that problem.

use std::path::PathBuf;

use landdb_ingest::pipeline::{self, ImportReport, Options};
use landdb_ingest::profiles::FieldMapping;
use landdb_ingest::verdict::{ReasonCode, Verdict};
use landdb_model::ReferenceData;
use serde_json::{Value, json};

fn square(x: f64, y: f64, d: f64) -> Value {
    json!({ "type": "Polygon", "coordinates": [[[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]] })
}

fn feature(props: Value, geometry: Value) -> Value {
    json!({ "type": "Feature", "properties": props, "geometry": geometry })
}

fn props(commune: &str, number: u32) -> Value {
    json!({ "MaXa": commune, "SoHieuToBanDo": 1, "SoThuTuThua": number, "DienTich": 400.0, "KyHieuMucDichSuDung": "ODT" })
}

fn validate(name: &str, features: Vec<Value>) -> ImportReport {
    let dir = std::env::temp_dir().join(format!("landdb-reasons-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join(format!("{name}.geojson"));
    std::fs::write(&file, json!({ "type": "FeatureCollection", "features": features }).to_string()).expect("write");
    let reference = ReferenceData::embedded().expect("reference");
    let options = Options { crs_override: None, mapping: FieldMapping::builtin().expect("profile"), area: None };
    let report = pipeline::run(&[file], &dir.join("scratch"), &reference, &options, &|_| {}).expect("readable");
    let _ = std::fs::remove_dir_all(&dir);
    report
}

/// The reasons of the record at `feature` (1-based).
fn reasons_of(report: &ImportReport, feature: usize) -> Vec<ReasonCode> {
    report
        .records
        .iter()
        .find(|r| r.feature == feature)
        .map(|r| r.reasons.iter().map(|x| x.code).collect())
        .unwrap_or_default()
}

#[test]
fn each_bad_record_is_rejected_for_its_own_reason() {
    let d = 0.0002; // about 20 m
    let (x, y) = (108.2, 16.05);
    let mut hole_outside = square(x, y + 0.01, d);
    hole_outside["coordinates"].as_array_mut().expect("rings").push(square(x + 0.5, y, d)["coordinates"][0].clone());
    let features = vec![
        feature(props("20194", 1), square(x, y, d)), // 1: fine
        feature(props("20194", 2), json!({ "type": "Point", "coordinates": [x, y] })), // 2
        feature(props("20194", 3), hole_outside),    // 3
        feature(props("20194", 4), square(2.35, 48.85, d)), // 4: Paris
        feature(json!({ "MaXa": "20194", "SoHieuToBanDo": 1 }), square(x, y + 0.02, d)), // 5
        feature(props("ABCDE", 6), square(x, y + 0.03, d)), // 6
        feature(props("0", 7), square(x, y + 0.04, d)), // 7
        feature(
            json!({ "MaXa": "20194", "SoHieuToBanDo": 1, "SoThuTuThua": 8, "DienTich": "bốn trăm" }),
            square(x, y + 0.05, d),
        ), // 8
        feature(props("20194", 9), Value::Null),     // 9
    ];
    let r = validate("reasons", features);
    assert_eq!(r.input, 9);
    assert_eq!(r.accepted + r.accepted_with_warnings + r.repaired + r.rejected, r.input);
    let expect = [
        (2, ReasonCode::NotPolygon),
        (3, ReasonCode::InvalidGeometry),
        (4, ReasonCode::OutsideVietnam),
        (5, ReasonCode::MissingKey),
        (6, ReasonCode::InvalidCommuneCode),
        (7, ReasonCode::UnknownCommune),
        (8, ReasonCode::InvalidValue),
        (9, ReasonCode::NullGeometry),
    ];
    for (feature, code) in expect {
        assert!(
            reasons_of(&r, feature).contains(&code),
            "feature {feature}: {:?}\n{:#?}",
            reasons_of(&r, feature),
            r.records
        );
        let verdict = r.records.iter().find(|x| x.feature == feature).map(|x| x.verdict);
        assert_eq!(verdict, Some(Verdict::Rejected), "feature {feature}");
    }
    assert_eq!(r.rejected, expect.len());
    let missing = r.records.iter().find(|x| x.feature == 5).expect("record 5");
    assert!(missing.reasons[0].detail.contains("parcel number"), "{:?}", missing.reasons);
    let bad_value = r.records.iter().find(|x| x.feature == 8).expect("record 8");
    assert_eq!(bad_value.reasons[0].field.as_deref(), Some("DienTich"), "the field is named");
}

#[test]
fn metres_with_no_crs_and_no_known_commune_are_refused_with_advice() {
    // TM-3 metres in a GeoJSON without a `crs` member, and a commune in no province.
    let r = validate("nocrs", vec![feature(props("0", 1), square(548_000.0, 1_775_000.0, 20.0))]);
    assert_eq!(r.rejected, 1);
    let record = &r.records[0];
    assert_eq!(record.reasons[0].code, ReasonCode::NoCrs);
    assert!(record.reasons[0].detail.contains("--crs"));
}

#[test]
fn metres_with_no_crs_are_read_in_the_commune_zone() {
    let r = validate("inferred", vec![feature(props("20194", 1), square(548_000.0, 1_775_000.0, 20.0))]);
    assert_eq!(r.rejected, 0, "{:?}", r.records);
    assert_eq!(r.layers[0].crs, "EPSG:5899");
    assert_eq!(r.reasons.get(&ReasonCode::CrsInferred), Some(&1));
}

#[test]
fn an_explicit_crs_wins() {
    let dir = std::env::temp_dir().join(format!("landdb-reasons-override-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file: PathBuf = dir.join("o.geojson");
    let f = feature(props("20194", 1), square(548_000.0, 1_775_000.0, 20.0));
    std::fs::write(&file, json!({ "type": "FeatureCollection", "features": [f] }).to_string()).expect("write");
    let reference = ReferenceData::embedded().expect("reference");
    let crs = landdb_ingest::crs::CrsChoice::parse_override("EPSG:9210", &reference).expect("zone");
    let options = Options { crs_override: Some(crs), mapping: FieldMapping::builtin().expect("profile"), area: None };
    let r = pipeline::run(&[file], &dir.join("s"), &reference, &options, &|_| {}).expect("readable");
    assert_eq!((r.layers[0].crs.as_str(), r.layers[0].crs_basis.as_str()), ("EPSG:9210", "override"));
    let _ = std::fs::remove_dir_all(&dir);
}
