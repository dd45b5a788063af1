//! Importing uploads into both stores: every record accounted for, rejections quarantined, a
//! re-upload a no-op, append refusing current keys, replace-commune changing exactly what changed.

use std::path::{Path, PathBuf};

use landdb_ingest::import::{Mode, import};
use landdb_ingest::pipeline::Options;
use landdb_ingest::profiles::FieldMapping;
use landdb_ingest::verdict::ReasonCode;
use landdb_model::{FeedPosition, ReferenceData};
use landdb_store::{AnyStore, ChangeKind, ParcelStore};

async fn stores() -> Vec<(AnyStore, landdb_tests::StoreGuard)> {
    landdb_tests::both_stores().await
}

fn sample(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data-samples").join(path)
}

fn options() -> Options {
    Options { crs_override: None, mapping: FieldMapping::builtin().expect("profile"), area: None }
}

async fn run(store: &AnyStore, path: &Path, mode: Mode) -> landdb_ingest::import::Imported {
    let reference = ReferenceData::embedded().expect("reference");
    import(store, &[path.to_owned()], &reference, &options(), mode, &|_| {}).await.expect("import commits")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_loaded_or_quarantined_and_a_re_upload_changes_nothing() {
    for (store, _guard) in stores().await {
        let file = sample("dirty-geojson/20194.geojson");
        let first = run(&store, &file, Mode::Append).await;
        let r = &first.report;
        assert!(!first.already_imported);
        assert_eq!(r.accepted + r.accepted_with_warnings + r.repaired + r.rejected, r.input);
        assert!(r.rejected > 0 && r.repaired > 0);
        let loaded = r.input - r.rejected;
        assert_eq!(store.count_current().await.expect("count") as usize, loaded, "{}", store.kind());
        assert_eq!(first.changes.inserted, loaded);
        let quarantined = store.quarantined(first.batch.id).await.expect("quarantine");
        assert_eq!(quarantined.len(), r.rejected, "nothing is lost");
        assert!(quarantined.iter().all(|q| q.reasons.as_array().is_some_and(|a| !a.is_empty())));
        assert!(quarantined.iter().any(|q| q.source["attributes"]["MaXa"] == "20194"), "source attributes kept");
        assert_eq!(store.feed_head().await.expect("head"), FeedPosition(loaded as i64));

        let again = run(&store, &file, Mode::Append).await;
        assert!(again.already_imported);
        assert_eq!(again.batch.id, first.batch.id, "points to the earlier batch");
        assert_eq!(store.count_current().await.expect("count") as usize, loaded);
        assert_eq!(store.feed_head().await.expect("head"), FeedPosition(loaded as i64));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_refuses_keys_that_are_already_current() {
    for (store, _guard) in stores().await {
        let first = run(&store, &sample("dirty-geojson/20194.geojson"), Mode::Append).await;
        let before = store.count_current().await.expect("count");
        let second = run(&store, &sample("dirty-geojson/20194.gpkg"), Mode::Append).await;
        assert_eq!(second.changes.inserted, 0);
        assert_eq!(
            second.report.reasons.get(&ReasonCode::DuplicateKeyInStore).copied().unwrap_or(0),
            first.changes.inserted,
            "every parcel loaded the first time is refused the second"
        );
        assert_eq!(store.count_current().await.expect("count"), before);
        assert_eq!(second.report.rejected, second.changes.quarantined);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_commune_changes_exactly_what_changed() {
    let dir = std::env::temp_dir().join(format!("landdb-replace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let original = sample("geojson/20194.geojson");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&original).expect("file")).expect("json");
    let features = doc["features"].as_array_mut().expect("features");
    let n = features.len();
    features[10]["properties"]["DiaChi"] = "Số 1 Đường Mới, Phường Hải Vân".into();
    features.remove(20);
    let changed = dir.join("20194-v2.geojson");
    std::fs::write(&changed, doc.to_string()).expect("write");

    for (store, _guard) in stores().await {
        run(&store, &original, Mode::Append).await;
        let head = store.feed_head().await.expect("head");
        let v2 = run(&store, &changed, Mode::ReplaceCommune).await;
        assert_eq!((v2.changes.inserted, v2.changes.updated, v2.changes.retired), (0, 1, 1), "{}", store.kind());
        assert_eq!(v2.changes.unchanged, n - 2);
        assert_eq!(store.count_current().await.expect("count") as usize, n - 1);
        let feed = store.changes_since(head, 100).await.expect("feed");
        let kinds: Vec<ChangeKind> = feed.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [ChangeKind::Retired, ChangeKind::Retired, ChangeKind::Created],
            "the feed reports exactly the change"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same content imported twice at the same time: one batch loads it, the other finds that
/// batch and changes nothing (PostgreSQL used to answer the second with a raw unique-constraint
/// error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_content_imported_twice_at_once_is_loaded_once() {
    for (store, _guard) in stores().await {
        let file = sample("dirty-geojson/20194.geojson");
        let reference = ReferenceData::embedded().expect("reference");
        let options = options();
        let paths = [file.clone()];
        let once = || import(&store, &paths, &reference, &options, Mode::Append, &|_| {});
        let (a, b) = tokio::join!(once(), once());
        let (a, b) = (a.expect("one import"), b.expect("the other import"));
        assert_eq!(a.batch.id, b.batch.id, "{}", store.kind());
        assert!(a.already_imported != b.already_imported, "{}: exactly one loads it", store.kind());
        let loaded = if a.already_imported { &b } else { &a };
        assert_eq!(store.count_current().await.expect("count") as usize, loaded.changes.inserted);
    }
}
