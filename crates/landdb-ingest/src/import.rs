//! Loading an upload: one import batch, atomic. The pipeline's verdicts are checked against the
//! store (a key that is already current), rejected records go to the quarantine, and in
//! replace-commune mode parcels absent from the upload are retired, changed ones superseded and
//! unchanged ones left alone. Re-uploading the same content is a no-op that names the earlier batch.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use landdb_model::{CommuneCode, Parcel, ParcelKey, ReferenceData, VersionId};
use landdb_store::{BatchInfo, BatchWriter, NewBatch, ParcelStore, QuarantinedRecord, StoreError, fingerprint};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::SourceError;
use crate::pipeline::{self, ImportReport, Options, Processed};
use crate::source::SourceGeometry;
use crate::verdict::{Reason, ReasonCode, Verdict};

use crate::load::CHUNK;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// New parcels only: a key that is already current is rejected.
    Append,
    /// The upload is the whole truth for its communes: changed parcels get a new version,
    /// unchanged ones are untouched, absent ones are retired.
    ReplaceCommune,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::ReplaceCommune => "replace-commune",
        }
    }
}

/// What the batch did to the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub retired: usize,
    pub quarantined: usize,
}

#[derive(Debug, Serialize)]
pub struct Imported {
    pub report: ImportReport,
    pub changes: Changes,
    pub batch: BatchInfo,
    /// True when the content had been imported before: nothing was done.
    pub already_imported: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{0} (the batch was rolled back; the store is as it was)")]
    Store(#[from] StoreError),
}

/// SHA-256 over every input file (Shapefile side files included), by name and content, and the mode.
pub fn content_hash(paths: &[PathBuf], mode: Mode) -> Result<String, SourceError> {
    let mut files: BTreeSet<PathBuf> = BTreeSet::new();
    fn walk(path: &Path, files: &mut BTreeSet<PathBuf>) -> Result<(), SourceError> {
        let read = |source| SourceError::Read { file: path.to_owned(), source };
        if path.is_dir() {
            for entry in std::fs::read_dir(path).map_err(read)? {
                walk(&entry.map_err(read)?.path(), files)?;
            }
        } else {
            // The side files that belong to a Shapefile or a MapInfo table are part of its content.
            let sides: &[&str] = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref()
            {
                Some("shp") => &["shx", "dbf", "prj", "cpg"],
                Some("tab") => &["dat", "map", "id"],
                _ => &[],
            };
            for side in sides {
                let side = path.with_extension(side);
                if side.exists() {
                    files.insert(side);
                }
            }
            files.insert(path.to_owned());
        }
        Ok(())
    }
    for p in paths {
        walk(p, &mut files)?;
    }
    let mut hasher = Sha256::new();
    hasher.update(mode.name());
    for file in &files {
        let bytes = std::fs::read(file).map_err(|source| SourceError::Read { file: file.clone(), source })?;
        hasher.update(file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(format!("sha256:{}", hasher.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

fn quarantine_record(p: &Processed) -> QuarantinedRecord {
    let source = match (&p.source, &p.outcome.withheld) {
        (Some(record), _) => {
            let attributes: serde_json::Map<String, serde_json::Value> =
                record.attributes.iter().map(|(n, v)| (n.clone(), v.to_json())).collect();
            let geometry = match &record.geometry {
                SourceGeometry::Null => serde_json::Value::Null,
                SourceGeometry::NotPolygon(kind) => json!({ "type": kind }),
                SourceGeometry::Point(c) => json!({ "type": "Point", "coordinates": [c.x, c.y] }),
                SourceGeometry::Polygons(polys) => json!({
                    "type": "MultiPolygon",
                    "coordinates": polys.iter().map(|rings| rings.iter().map(|ring| ring.iter().map(|c| [c.x, c.y]).collect::<Vec<_>>()).collect::<Vec<_>>()).collect::<Vec<_>>(),
                }),
            };
            json!({ "attributes": attributes, "geometry": geometry })
        }
        (None, Some(parcel)) => json!({ "parcel": parcel }),
        (None, None) => serde_json::Value::Null,
    };
    QuarantinedRecord {
        file: p.file.display().to_string(),
        layer: p.layer.clone(),
        feature: i32::try_from(p.outcome.feature).unwrap_or(i32::MAX),
        parcel_key: p.outcome.key.as_ref().map(ToString::to_string),
        reasons: serde_json::to_value(&p.outcome.reasons).unwrap_or_default(),
        source,
    }
}

/// Imports `paths` as one batch.
pub async fn import<S: ParcelStore>(
    store: &S,
    paths: &[PathBuf],
    reference: &ReferenceData,
    options: &Options,
    mode: Mode,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Imported, ImportError> {
    let hash = content_hash(paths, mode)?;
    if let Some(earlier) = store.batch_by_content_hash(&hash).await? {
        let report: ImportReport = ImportReport {
            batch: Some(json!({ "id": earlier.id, "committed_at": earlier.committed_at })),
            ..ImportReport::default()
        };
        return Ok(Imported { report, changes: Changes::default(), batch: earlier, already_imported: true });
    }
    let scratch =
        std::env::temp_dir().join(format!("landdb-import-{}-{}", std::process::id(), hash.get(7..19).unwrap_or("x")));
    let started = std::time::Instant::now();
    let result = tokio::task::block_in_place(|| pipeline::run(paths, &scratch, reference, options, progress));
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "read and judged");
    let _ = std::fs::remove_dir_all(&scratch);
    let (mut processed, mut report) = result?;

    // Check against the store.
    let communes: Vec<CommuneCode> = processed
        .iter()
        .filter_map(|p| p.outcome.key.as_ref().map(|k| k.commune.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let current: HashMap<ParcelKey, (VersionId, String)> =
        store.current_in_communes(&communes).await?.into_iter().map(|e| (e.key, (e.version, e.fingerprint))).collect();
    let mut changes = Changes::default();
    let mut inserts: Vec<Parcel> = Vec::new();
    let mut updates: Vec<(Parcel, VersionId)> = Vec::new();
    let uploaded_keys: HashSet<ParcelKey> = processed.iter().filter_map(|p| p.outcome.key.clone()).collect();
    // Parcels move out of the outcomes (no copies: an upload can be millions of parcels).
    for p in &mut processed {
        let Some(known) = p.outcome.parcel.as_ref().map(|parcel| current.get(&parcel.key)) else { continue };
        match (known, mode) {
            (None, _) => inserts.extend(p.outcome.parcel.take()),
            (Some((version, _)), Mode::Append) => {
                let key = p.outcome.key.as_ref().map(ToString::to_string).unwrap_or_default();
                p.outcome.reject(Reason::new(
                    ReasonCode::DuplicateKeyInStore,
                    format!("{key} is already current (version {version}); use --mode replace-commune to update it"),
                ));
            }
            (Some((version, stored)), Mode::ReplaceCommune) => {
                let parcel = p.outcome.parcel.take();
                match parcel {
                    Some(parcel) if *stored == fingerprint(&parcel) => changes.unchanged += 1,
                    Some(parcel) => updates.push((parcel, *version)),
                    None => {}
                }
            }
        }
    }
    let retire: Vec<VersionId> = match mode {
        Mode::Append => Vec::new(),
        Mode::ReplaceCommune => {
            let mut v: Vec<VersionId> =
                current.iter().filter(|(k, _)| !uploaded_keys.contains(*k)).map(|(_, (v, _))| *v).collect();
            v.sort();
            v
        }
    };
    report.recount(&processed);
    let quarantine: Vec<QuarantinedRecord> =
        processed.iter().filter(|p| p.outcome.verdict == Verdict::Rejected).map(quarantine_record).collect();
    drop(processed);

    let source = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    let province = communes.first().and_then(|c| reference.province_of(c)).map(|p| p.to_string());
    let mut batch = store
        .begin_batch(NewBatch { source, province_code: province, content_hash: Some(hash), mode: mode.name().into() })
        .await?;
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "checked against the store");
    let written = async {
        for chunk in inserts.chunks(CHUNK) {
            batch.insert(chunk).await?;
        }
        for (parcel, version) in &updates {
            batch.supersede(parcel, &[*version]).await?;
        }
        batch.retire(&retire).await?;
        batch.quarantine(&quarantine).await?;
        Ok::<_, StoreError>(())
    }
    .await;
    if let Err(e) = written {
        let _ = batch.rollback().await;
        return Err(e.into());
    }
    changes.inserted = inserts.len();
    changes.updated = updates.len();
    changes.retired = retire.len();
    changes.quarantined = quarantine.len();
    let summary = json!({
        "input": report.input,
        "accepted": report.accepted,
        "accepted_with_warnings": report.accepted_with_warnings,
        "repaired": report.repaired,
        "rejected": report.rejected,
        "changes": changes,
    });
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "written");
    let info = batch.commit(summary).await?;
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "committed");
    report.batch = Some(json!({ "id": info.id, "committed_at": info.committed_at }));
    Ok(Imported { report, changes, batch: info, already_imported: false })
}
