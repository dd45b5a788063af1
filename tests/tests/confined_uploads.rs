//! Uploads confined to an area, against both stores: a replace-commune upload that names a commune
//! outside the area is refused whole and changes nothing; an append upload quarantines the
//! foreign record and changes nothing outside; the same bytes from two agencies are two batches.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use landdb_access::{Area, Scope};
use landdb_ingest::import::{ImportError, Imported, Mode, Submission, import, import_submission};
use landdb_ingest::pipeline::Options;
use landdb_ingest::profiles::FieldMapping;
use landdb_ingest::verdict::ReasonCode;
use landdb_model::{CommuneCode, ReferenceData};
use landdb_store::{AnyStore, ParcelStore};
use serde_json::Value;

async fn stores() -> Vec<(AnyStore, landdb_tests::StoreGuard)> {
    landdb_tests::both_stores().await
}

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data-samples/geojson")
}

const COMMUNES: [&str; 3] = ["20194", "20197", "20200"];

/// The options of an upload by an agency whose area is `communes`, compiled as the server does.
fn confined_to(communes: &[&str]) -> Options {
    let reference = ReferenceData::embedded().expect("reference");
    let area = Area::Communes { codes: communes.iter().map(|c| (*c).to_owned()).collect() };
    let Ok(Scope::Communes(set)) = Scope::compile(&area, &reference) else { panic!("a commune area") };
    Options { crs_override: None, mapping: FieldMapping::builtin().expect("profile"), area: Some(Arc::new(set)) }
}

async fn load_samples(store: &AnyStore) {
    let reference = ReferenceData::embedded().expect("reference");
    let options = Options { crs_override: None, mapping: FieldMapping::builtin().expect("profile"), area: None };
    let files: Vec<PathBuf> = COMMUNES.iter().map(|c| samples().join(format!("{c}.geojson"))).collect();
    import(store, &files, &reference, &options, Mode::Append, &|_| {}).await.expect("samples import");
}

/// Every current version of each sample commune, by commune: what must not move.
async fn current_by_commune(store: &AnyStore) -> BTreeMap<String, Vec<i64>> {
    let mut out = BTreeMap::new();
    for c in COMMUNES {
        let code = CommuneCode::parse(c).expect("code");
        let mut versions: Vec<i64> =
            store.current_in_communes(&[code]).await.expect("current").iter().map(|e| e.version.0).collect();
        versions.sort_unstable();
        out.insert(c.to_owned(), versions);
    }
    out
}

fn features(path: &Path) -> Vec<Value> {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("file")).expect("json");
    doc["features"].as_array().expect("features").clone()
}

/// A GeoJSON file of Hải Vân's (20194) parcels with `extra` appended, in a directory of its own.
fn hai_van_with(dir: &Path, name: &str, extra: Vec<Value>) -> PathBuf {
    let mut all = features(&samples().join("20194.geojson"));
    all.extend(extra);
    let path = dir.join(name);
    std::fs::write(&path, serde_json::json!({ "type": "FeatureCollection", "features": all }).to_string())
        .expect("write");
    path
}

/// One parcel of Liên Chiểu (20197), as the sample has it, with its commune code set to `code`.
fn lien_chieu_parcel_as(code: &str) -> Value {
    let mut feature = features(&samples().join("20197.geojson")).swap_remove(5);
    feature["properties"]["MaXa"] = code.into();
    feature
}

async fn upload(
    store: &AnyStore,
    path: &Path,
    agency: &str,
    options: &Options,
    mode: Mode,
) -> Result<Imported, ImportError> {
    let reference = ReferenceData::embedded().expect("reference");
    let path = path.to_path_buf();
    let shown = path.file_name().expect("name").to_string_lossy().into_owned();
    let submission = Submission::upload(&path, &shown, agency);
    import_submission(store, &submission, &reference, options, mode, &|_| {}).await
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("landdb-confined-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// The critical case of issue 17: a Hải Vân uploader replaces its commune with a file carrying
/// one parcel of Liên Chiểu. Before, the record was rejected but 848 of Liên Chiểu's 849 parcels
/// were retired. Now the upload is refused whole, naming the file, the feature, the commune and
/// the area, and nothing anywhere changes. Pre-2025 codes that lead out of the area (Hòa Liên,
/// split between Hải Vân and Liên Chiểu; Tam Thuận, now Thanh Khê) are refused alike, and so is a
/// record that is itself rejected for other reasons but still names a foreign commune.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replace_naming_a_commune_outside_the_area_is_refused_whole() {
    let dir = scratch("replace");
    let mut broken = lien_chieu_parcel_as("20197");
    broken["geometry"] = Value::Null;
    let cases = [
        ("one-foreign.geojson", lien_chieu_parcel_as("20197"), "20197"),
        ("split-old-code.geojson", lien_chieu_parcel_as("20296"), "20296"),
        ("old-code-elsewhere.geojson", lien_chieu_parcel_as("20203"), "20203"),
        ("rejected-foreign.geojson", broken, "20197"),
    ];
    let files: Vec<(PathBuf, &str)> =
        cases.into_iter().map(|(name, extra, commune)| (hai_van_with(&dir, name, vec![extra]), commune)).collect();
    let hai_van = confined_to(&["20194"]);
    for (store, _guard) in stores().await {
        load_samples(&store).await;
        let before = current_by_commune(&store).await;
        let head = store.feed_head().await.expect("head");
        for (file, commune) in &files {
            let name = file.file_name().expect("name").to_string_lossy().into_owned();
            let error = upload(&store, file, "hai-van", &hai_van, Mode::ReplaceCommune)
                .await
                .expect_err("a replace naming a foreign commune is refused");
            let ImportError::OutsideArea { file: named, feature, commune: found, .. } = &error else {
                panic!("{}: refused for the wrong reason: {error}", store.kind())
            };
            assert_eq!(named.to_string_lossy(), name, "{error}");
            assert_eq!(*feature, features(file).len(), "the foreign record is the last: {error}");
            assert_eq!(found.as_str(), *commune);
            let message = error.to_string();
            for part in [name.as_str(), commune, "20194", &format!("feature {feature}")] {
                assert!(message.contains(part), "{part} missing from: {message}");
            }
            assert!(!message.contains(&dir.display().to_string()), "no server path: {message}");
            assert_eq!(current_by_commune(&store).await, before, "{}: {name} changed the store", store.kind());
            assert_eq!(store.feed_head().await.expect("head"), head, "{}: nothing reached the feed", store.kind());
        }
        // The same upload without the foreign record is a replace like any other: inside the area.
        let clean = hai_van_with(&dir, "clean.geojson", Vec::new());
        let done = upload(&store, &clean, "hai-van", &hai_van, Mode::ReplaceCommune).await.expect("inside the area");
        assert_eq!(done.changes.retired, 0);
        assert_eq!(current_by_commune(&store).await, before);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Append confined to Hải Vân: the foreign record (a Liên Chiểu key that is current) is
/// quarantined as outside the area, Hải Vân's new parcels load, and Liên Chiểu does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_quarantines_a_foreign_record_and_changes_nothing_outside() {
    let dir = scratch("append");
    let mut changed = lien_chieu_parcel_as("20197");
    changed["properties"]["DiaChi"] = "changed by an upload from another commune".into();
    let file = hai_van_with(&dir, "append-foreign.geojson", vec![changed]);
    let hai_van = confined_to(&["20194"]);
    let reference = ReferenceData::embedded().expect("reference");
    let plain = Options { crs_override: None, mapping: FieldMapping::builtin().expect("profile"), area: None };
    for (store, _guard) in stores().await {
        let others: Vec<PathBuf> = ["20197", "20200"].iter().map(|c| samples().join(format!("{c}.geojson"))).collect();
        import(&store, &others, &reference, &plain, Mode::Append, &|_| {}).await.expect("others");
        let before = current_by_commune(&store).await;
        let done = upload(&store, &file, "hai-van", &hai_van, Mode::Append).await.expect("append commits");
        let hai_van_parcels = features(&samples().join("20194.geojson")).len();
        assert_eq!(done.changes.inserted, hai_van_parcels, "{}", store.kind());
        assert_eq!((done.changes.updated, done.changes.retired), (0, 0));
        assert_eq!(done.report.reasons.get(&ReasonCode::OutsideUploaderArea).copied(), Some(1));
        let quarantined = store.quarantined(done.batch.id).await.expect("quarantine");
        assert_eq!(quarantined.len(), 1);
        assert_eq!(quarantined[0].file, "append-foreign.geojson", "named as uploaded");
        let after = current_by_commune(&store).await;
        assert_eq!(after["20197"], before["20197"], "{}: Liên Chiểu untouched", store.kind());
        assert_eq!(after["20200"], before["20200"]);
        assert_eq!(after["20194"].len(), hai_van_parcels);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same file and bytes from two agencies: two batches. Each agency's re-upload finds its own
/// batch, never the other's, and the operator's import of the same bytes is a third.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bytes_from_two_agencies_are_two_batches() {
    let file = samples().join("../dirty-geojson/20194.geojson");
    let hai_van = confined_to(&["20194"]);
    for (store, _guard) in stores().await {
        let a = upload(&store, &file, "agency-a", &hai_van, Mode::Append).await.expect("A");
        let b = upload(&store, &file, "agency-b", &hai_van, Mode::Append).await.expect("B");
        assert!(!a.already_imported && !b.already_imported, "{}", store.kind());
        assert_ne!(a.batch.id, b.batch.id);
        assert_ne!(a.batch.content_hash, b.batch.content_hash);
        let a_again = upload(&store, &file, "agency-a", &hai_van, Mode::Append).await.expect("A again");
        assert!(a_again.already_imported);
        assert_eq!(a_again.batch.id, a.batch.id, "A finds its own batch");
        let b_again = upload(&store, &file, "agency-b", &hai_van, Mode::Append).await.expect("B again");
        assert_eq!(b_again.batch.id, b.batch.id, "B finds its own batch, not A's");
        assert!(a.batch.source.contains("agency-a") && a.batch.source.contains("20194.geojson"), "{}", a.batch.source);
        let reference = ReferenceData::embedded().expect("reference");
        let operator =
            import(&store, std::slice::from_ref(&file), &reference, &hai_van, Mode::Append, &|_| {}).await.expect("op");
        assert!(!operator.already_imported);
        let ids: HashSet<i64> = [a.batch.id.0, b.batch.id.0, operator.batch.id.0].into_iter().collect();
        assert_eq!(ids.len(), 3);
    }
}
