//! The hostile corpus (`data-samples/hostile/`, written by `tools/make-hostile`, outcomes in its
//! `expected.csv`): every file through `validate` and through an upload's import into real
//! PostGIS. Nothing panics or runs away; a file is either read, with every record loaded or
//! quarantined (never lost, never doubled) and every rejection giving its reason with file,
//! feature and field, or refused whole with a reason naming it as it was uploaded, never by a
//! server path, and leaving the store as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use landdb_ingest::import::{Mode, Submission, import_submission};
use landdb_ingest::pipeline::{self, ImportReport, Options};
use landdb_ingest::profiles::FieldMapping;
use landdb_ingest::verdict::{ReasonCode, Verdict};
use landdb_model::ReferenceData;
use landdb_store::{AnyStore, DatabaseUrl, ParcelStore};
use landdb_tests::PostgisDb;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data-samples/hostile")
}

/// `expected.csv`: for each file, `records` with the report's totals (`input=4 rejected=3
/// coordinate_out_of_range=3`), or `refused` with texts the refusal must contain.
fn expectations() -> BTreeMap<String, (String, Vec<String>)> {
    let text = std::fs::read_to_string(corpus().join("expected.csv")).expect("expected.csv");
    let mut out: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(3, ',');
        let (Some(file), Some(outcome), Some(detail)) = (parts.next(), parts.next(), parts.next()) else {
            panic!("expected.csv: {line}");
        };
        let entry = out.entry(file.to_owned()).or_insert_with(|| (outcome.to_owned(), Vec::new()));
        assert_eq!(entry.0, outcome, "{file}: one outcome");
        entry.1.push(detail.trim_matches('"').to_owned());
    }
    out
}

fn options() -> Options {
    Options { crs_override: None, mapping: FieldMapping::builtin().expect("profile"), area: None }
}

/// Codes whose reason concerns one field, which it must name.
const FIELD_CODES: [ReasonCode; 5] = [
    ReasonCode::WrongType,
    ReasonCode::DuplicateField,
    ReasonCode::ControlCharacter,
    ReasonCode::ControlCharactersRemoved,
    ReasonCode::InvalidValue,
];

fn code_name(code: ReasonCode) -> String {
    serde_json::to_value(code).expect("code").as_str().expect("a string").to_owned()
}

/// The report's totals and reason counts as `expected.csv` writes them.
fn totals(report: &ImportReport) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> =
        [("input".to_owned(), report.input), ("rejected".to_owned(), report.rejected)].into_iter().collect();
    out.extend(report.reasons.iter().map(|(code, n)| (code_name(*code), *n)));
    out
}

fn check_records(file: &str, report: &ImportReport, expected: &[String]) {
    let totals = totals(report);
    for item in expected.iter().flat_map(|e| e.split_whitespace()) {
        let (name, count) = item.split_once('=').expect("name=count");
        let count: usize = count.parse().expect("count");
        assert_eq!(totals.get(name).copied().unwrap_or(0), count, "{file}: {name} in {totals:?}");
    }
    assert_eq!(report.accepted + report.accepted_with_warnings + report.repaired + report.rejected, report.input);
    for record in &report.records {
        assert!(record.file.to_string_lossy().contains(file), "{file}: record names {:?}", record.file);
        assert!(record.feature >= 1, "{file}: feature {}", record.feature);
        assert!(!record.reasons.is_empty(), "{file}, feature {}: no reason", record.feature);
        for reason in &record.reasons {
            if FIELD_CODES.contains(&reason.code) {
                assert!(reason.field.is_some(), "{file}, feature {}: {reason:?} names no field", record.feature);
            }
        }
        if record.verdict == Verdict::Rejected {
            assert!(
                record.reasons.iter().any(|r| r.code.severity() == Verdict::Rejected),
                "{file}, feature {}: rejected without a rejection",
                record.feature
            );
        }
    }
}

/// A refusal names the file as uploaded, says why, and shows no server path.
fn check_refusal(file: &str, message: &str, expected: &[String], server_paths: &[&Path]) {
    assert!(message.contains(file), "{file}: the refusal does not name it: {message}");
    for text in expected {
        assert!(message.contains(text.as_str()), "{file}: {text:?} missing from: {message}");
    }
    for path in server_paths {
        assert!(!message.contains(&*path.to_string_lossy()), "{file}: server path {} in: {message}", path.display());
    }
    assert!(!message.contains("NULL pointer"), "{file}: GDAL's words reach the operator: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_file_is_accounted_for_or_refused_with_its_reason() {
    let expectations = expectations();
    let mut on_disk: Vec<String> = std::fs::read_dir(corpus())
        .expect("corpus")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != "expected.csv" && n != "README.md")
        // A Shapefile's side files go with it.
        .filter(|n| !["dbf", "shx", "prj", "cpg"].iter().any(|side| n.ends_with(&format!(".{side}"))))
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, expectations.keys().cloned().collect::<Vec<_>>(), "every file has an expectation");

    let db = PostgisDb::create().await.expect("PostGIS");
    let store = AnyStore::open(&DatabaseUrl::parse(&db.url).expect("url")).await.expect("store");
    let reference = ReferenceData::embedded().expect("reference");
    let scratch = std::env::temp_dir().join(format!("landdb-hostile-{}", std::process::id()));
    let corpus_dir = corpus().canonicalize().expect("corpus");
    // Where an import expands archives.
    let temp = std::env::temp_dir().join("landdb-import-");
    for (file, (outcome, expected)) in &expectations {
        let path = corpus_dir.join(file);
        let started = Instant::now();
        let validated = pipeline::run(std::slice::from_ref(&path), &scratch, &reference, &options(), &|_| {});
        let before = store.count_current().await.expect("count");
        // As an upload: the server keeps the file somewhere of its own; the agency named it `file`.
        let submission = Submission::upload(&path, file, "hostile-agency");
        let imported = import_submission(&store, &submission, &reference, &options(), Mode::Append, &|_| {}).await;
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(60), "{file}: {elapsed:?}");
        match outcome.as_str() {
            "refused" => {
                let e = validated.expect_err("validate refuses it").to_string();
                check_refusal(file, &e, expected, &[&scratch, &temp]);
                let e = imported.expect_err("the import refuses it").to_string();
                check_refusal(file, &e, expected, &[&scratch, &temp, &corpus_dir]);
                assert_eq!(store.count_current().await.expect("count"), before, "{file}: nothing was written");
            }
            "records" => {
                let report = validated.unwrap_or_else(|e| panic!("{file}: validate: {e}"));
                check_records(file, &report, expected);
                let imported = imported.unwrap_or_else(|e| panic!("{file}: import: {e}"));
                let r = &imported.report;
                check_records(file, r, expected);
                assert_eq!((r.input, r.rejected), (report.input, report.rejected), "{file}: validate and import agree");
                let changes = &imported.changes;
                assert_eq!(
                    changes.inserted + changes.quarantined,
                    r.input,
                    "{file}: every record loaded or quarantined"
                );
                assert_eq!(changes.quarantined, r.rejected, "{file}");
                let now = store.count_current().await.expect("count");
                assert_eq!((now - before) as usize, changes.inserted, "{file}: loaded once");
                let quarantined = store.quarantined(imported.batch.id).await.expect("quarantine");
                assert_eq!(quarantined.len(), r.rejected, "{file}: every rejection quarantined");
                for q in &quarantined {
                    assert!(q.file.contains(file.as_str()) && q.feature >= 1, "{file}: {q:?}");
                    assert!(!q.file.contains(&*temp.to_string_lossy()), "{file}: {}", q.file);
                }
            }
            other => panic!("{file}: outcome {other}"),
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
