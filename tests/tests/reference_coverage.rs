//! The reference data against real parcels: every commune code in the bundled samples and in the
//! shared Đà Nẵng data reaches a 2025 commune of province 48, and a province-scoped area covers
//! every parcel of the province (issue 17: a province-48 agency saw 29,395 of its 33,740 parcels).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use landdb_access::{Area, Scope};
use landdb_model::reference::CommuneResolution;
use landdb_model::{CommuneCode, ProvinceCode, ReferenceData};
use serde_json::Value;

/// Parcels per commune code (`MaXa` as received) in the GeoJSON files of `dir`.
fn communes_in(dir: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "geojson"))
        .collect();
    files.sort();
    for file in files {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("file")).expect("json");
        for feature in doc["features"].as_array().expect("features") {
            let code = match &feature["properties"]["MaXa"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            *counts.entry(code).or_default() += 1;
        }
    }
    counts
}

/// The 2025 commune `code` reaches, when it reaches exactly one.
fn commune_2025(reference: &ReferenceData, code: &CommuneCode) -> Option<CommuneCode> {
    match reference.resolve_commune(code) {
        CommuneResolution::Current(c) | CommuneResolution::MergedInto(c) => Some(c),
        CommuneResolution::SplitAmong(_) | CommuneResolution::Unknown => None,
    }
}

fn assert_all_in_province(reference: &ReferenceData, counts: &BTreeMap<String, usize>, what: &str) {
    let da_nang = ProvinceCode::parse("48").expect("code");
    let mut unmapped = Vec::new();
    for (raw, n) in counts {
        let code = CommuneCode::parse(raw).unwrap_or_else(|_| panic!("{what}: {raw:?} is not a commune code"));
        match commune_2025(reference, &code).and_then(|c| reference.commune(&c).cloned()) {
            Some(c) if c.province_code == da_nang => {}
            found => unmapped.push(format!("{raw} ({n} parcels) → {found:?}")),
        }
    }
    assert!(unmapped.is_empty(), "{what}: communes reaching no 2025 commune of Đà Nẵng: {unmapped:#?}");
}

#[test]
fn every_parcel_commune_maps_to_a_2025_commune_of_its_province() {
    let reference = ReferenceData::embedded().expect("reference");
    let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data-samples");
    for dir in ["geojson", "clean"] {
        let counts = communes_in(&samples.join(dir));
        assert!(!counts.is_empty(), "data-samples/{dir} has parcels");
        assert_all_in_province(&reference, &counts, &format!("data-samples/{dir}"));
    }
    let Some(dir) = landdb_tests::danang_dir() else { return };
    let counts = communes_in(&dir);
    assert_eq!(counts.values().sum::<usize>(), 79_496, "the whole development set was read");
    assert_all_in_province(&reference, &counts, "shared/data/danang");
}

#[test]
fn a_province_area_covers_every_parcel_of_the_province() {
    let reference = ReferenceData::embedded().expect("reference");
    let scope = Scope::compile(&Area::Provinces { codes: vec!["48".into()] }, &reference).expect("compiles");
    let Some(dir) = landdb_tests::danang_dir() else { return };
    let counts = communes_in(&dir);
    let mut seen = 0;
    for (raw, n) in &counts {
        let code = CommuneCode::parse(raw).expect("code");
        // A commune area never needs the boundary.
        if scope.sees(&code, || unreachable!("a commune set decides by code")) {
            seen += n;
        }
    }
    assert_eq!(seen, 79_496, "a province-48 area sees every Đà Nẵng parcel: {counts:?}");
    // And a province that is not Đà Nẵng sees none of them.
    let hue = Scope::compile(&Area::Provinces { codes: vec!["46".into()] }, &reference).expect("compiles");
    assert!(counts.keys().all(|c| !hue.sees(&CommuneCode::parse(c).expect("code"), || unreachable!())));
}
