//! Loading an upload: one import batch, atomic. The pipeline's verdicts are checked against the
//! store (a key that is already current), rejected records go to the quarantine, and in
//! replace-commune mode parcels absent from the upload are retired, changed ones superseded and
//! unchanged ones left alone. Re-uploading the same content is a no-op that names the earlier batch.
//!
//! An upload confined to an area changes nothing outside it: records of other communes are
//! quarantined (append), a replace-commune upload naming one is refused whole, and the versions it
//! may supersede or retire come only from [`CurrentInArea`]. Deduplication is per submitter: the
//! same bytes from two agencies are two imports, and one never finds the other's batch.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::path::{Path, PathBuf};

use landdb_model::{CommuneCode, Parcel, ParcelKey, ReferenceData, VersionId};

use crate::area::WriteArea;
use crate::current::CurrentInArea;
use crate::names::SourceNames;
use landdb_store::{BatchInfo, BatchWriter, NewBatch, ParcelStore, QuarantinedRecord, StoreError, fingerprint};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::SourceError;
use crate::pipeline::{self, ImportReport, Ledger, Options, Processed};
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
    #[error(
        "{file} [{layer}], feature {feature}: commune {commune} is outside {area}. A replace-commune upload \
         replaces every commune its records name, so it may name only communes inside the area: nothing was \
         imported and nothing retired. Correct the record's commune code or send it in another upload"
    )]
    OutsideArea { file: PathBuf, layer: String, feature: usize, commune: CommuneCode, area: String },
    #[error("{0} (the batch was rolled back; the store is as it was)")]
    Store(#[from] StoreError),
}

/// Who sent an import. Part of its identity: the same content from two submitters is two imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitter {
    /// `landdb import` on the server.
    Operator,
    /// An agency, through `POST /jobs`.
    Agency(String),
}

/// One import's input: the paths to read, how reports name them, and who sent them.
#[derive(Debug)]
pub struct Submission<'a> {
    pub paths: &'a [PathBuf],
    pub names: SourceNames,
    pub submitter: Submitter,
}

impl<'a> Submission<'a> {
    /// The operator's import of `paths`, named as given.
    pub fn operator(paths: &'a [PathBuf]) -> Self {
        Self { paths, names: SourceNames::as_given(paths), submitter: Submitter::Operator }
    }

    /// An agency's upload, kept on the server at `path` and named `shown` as the client named it.
    pub fn upload(path: &'a PathBuf, shown: &str, agency: &str) -> Self {
        Self {
            paths: std::slice::from_ref(path),
            names: SourceNames::shown_as(vec![(path.clone(), shown.to_owned())]),
            submitter: Submitter::Agency(agency.to_owned()),
        }
    }

    /// What the batch records as its source.
    fn source(&self) -> String {
        let files = self.paths.iter().map(|p| self.names.shown(p)).collect::<Vec<_>>().join(", ");
        match &self.submitter {
            Submitter::Operator => files,
            Submitter::Agency(agency) => format!("upload by {agency}: {files}"),
        }
    }
}

/// SHA-256 over the submitter (an agency's name; nothing for the operator, so the operator's
/// earlier batches keep their hashes), the mode, and every input file (Shapefile side files
/// included) by name and content.
pub fn content_hash(paths: &[PathBuf], mode: Mode, submitter: &Submitter) -> Result<String, SourceError> {
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
    if let Submitter::Agency(agency) = submitter {
        // Length-prefixed, so that no agency name can run into the mode and collide.
        hasher.update(b"agency:");
        hasher.update((agency.len() as u64).to_le_bytes());
        hasher.update(agency.as_bytes());
    }
    hasher.update(mode.name());
    for file in &files {
        let bytes = std::fs::read(file).map_err(|source| SourceError::Read { file: file.clone(), source })?;
        hasher.update(file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(format!("sha256:{}", hasher.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// The source of a rejected record as it was read, or the parcel it became.
fn quarantine_source(p: &Processed) -> serde_json::Value {
    match (&p.source, &p.outcome.withheld) {
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
            // As read, but without control characters: PostgreSQL refuses a NUL in JSON (the
            // record's reasons say what was found).
            let mut source = json!({ "attributes": attributes, "geometry": geometry });
            crate::fields::clean_json(&mut source);
            source
        }
        (None, Some(parcel)) => json!({ "parcel": parcel }),
        (None, None) => serde_json::Value::Null,
    }
}

/// A quarantine row for ledger entry `entry`, whose source is `source`.
fn quarantine_record(ledger: &Ledger, entry: usize, source: serde_json::Value) -> QuarantinedRecord {
    let (file, layer, feature) = ledger.origin(entry).unwrap_or((Path::new(""), "", 0));
    QuarantinedRecord {
        file: file.display().to_string(),
        layer: layer.to_owned(),
        feature: i32::try_from(feature).unwrap_or(i32::MAX),
        parcel_key: ledger.key(entry).map(ToString::to_string),
        reasons: serde_json::to_value(ledger.reasons(entry)).unwrap_or_default(),
        source,
    }
}

/// Batches writing at least this many versions refresh the planner's statistics after commit.
const ANALYZE_FROM: usize = 10_000;

/// How a parcel of the upload reached the store.
#[derive(Debug, Clone, PartialEq)]
enum Written {
    Inserted(VersionId),
    Updated(VersionId),
    Unchanged,
    /// A later occurrence of a key this upload already had: not written, since both will be
    /// rejected; kept for the quarantine.
    Held(Box<Parcel>),
}

/// The store side of an import: takes judged chunks as they come, checks them against the store,
/// and writes them into the open batch.
struct Loader<'a, S: ParcelStore> {
    store: &'a S,
    batch: S::Batch,
    mode: Mode,
    ledger: Ledger,
    /// The current versions of every commune seen so far that is inside the area.
    current: CurrentInArea<'a>,
    uploaded: HashSet<ParcelKey>,
    written: HashMap<usize, Written>,
    changes: Changes,
}

impl<S: ParcelStore> Loader<'_, S> {
    async fn take(&mut self, chunk: Vec<Processed>) -> Result<(), ImportError> {
        let first = self.ledger.record(&chunk);
        if self.mode == Mode::ReplaceCommune {
            // Before anything of this chunk is written (and the batch is rolled back on error, so
            // nothing of earlier chunks stays either): any record naming a commune outside the
            // area, accepted or rejected, refuses the whole upload.
            let outside = chunk.iter().enumerate().find_map(|(i, p)| {
                let key = p.outcome.key.as_ref()?;
                (!self.current.area().admits(&key.commune)).then(|| (first + i, key.commune.clone()))
            });
            if let Some((entry, commune)) = outside {
                let (file, layer, feature) = self.ledger.origin(entry).unwrap_or((Path::new(""), "", 0));
                return Err(ImportError::OutsideArea {
                    file: file.to_owned(),
                    layer: layer.to_owned(),
                    feature,
                    commune,
                    area: self.current.area().describe(),
                });
            }
        }
        self.current.load(self.store, chunk.iter().filter_map(|p| p.outcome.key.as_ref().map(|k| &k.commune))).await?;
        let mut inserts: Vec<(usize, Parcel)> = Vec::new();
        let mut updates: Vec<(usize, Parcel, VersionId)> = Vec::new();
        let mut quarantine = Vec::new();
        for (i, mut p) in chunk.into_iter().enumerate() {
            let entry = first + i;
            if let Some(key) = &p.outcome.key {
                self.uploaded.insert(key.clone());
            }
            if let Some(parcel) = p.outcome.parcel.take() {
                // The pipeline already rejects these; a parcel that got here anyway is not written.
                if !self.current.area().admits(&parcel.key.commune) {
                    let reason = Reason::new(
                        ReasonCode::OutsideUploaderArea,
                        format!("commune {} is outside {}", parcel.key.commune, self.current.area().describe()),
                    );
                    self.ledger.reject(entry, reason.clone());
                    p.outcome.parcel = Some(parcel);
                    p.outcome.reject(reason);
                    quarantine.push(quarantine_record(&self.ledger, entry, quarantine_source(&p)));
                    continue;
                }
                if self.ledger.first_with_key(&parcel.key) != Some(entry) {
                    self.written.insert(entry, Written::Held(Box::new(parcel)));
                    continue;
                }
                match (self.current.get(&parcel.key), self.mode) {
                    (None, _) => inserts.push((entry, parcel)),
                    (Some((version, _)), Mode::Append) => {
                        let reason = Reason::new(
                            ReasonCode::DuplicateKeyInStore,
                            format!(
                                "{} is already current (version {version}); use --mode replace-commune to update it",
                                parcel.key
                            ),
                        );
                        self.ledger.reject(entry, reason.clone());
                        p.outcome.parcel = Some(parcel);
                        p.outcome.reject(reason);
                    }
                    (Some((version, stored)), Mode::ReplaceCommune) => {
                        if *stored == fingerprint(&parcel) {
                            self.written.insert(entry, Written::Unchanged);
                            self.changes.unchanged += 1;
                        } else {
                            updates.push((entry, parcel, *version));
                        }
                    }
                }
            }
            if p.outcome.verdict == Verdict::Rejected {
                quarantine.push(quarantine_record(&self.ledger, entry, quarantine_source(&p)));
            }
        }
        let (entries, parcels): (Vec<usize>, Vec<Parcel>) = inserts.into_iter().unzip();
        for (entries, parcels) in entries.chunks(CHUNK).zip(parcels.chunks(CHUNK)) {
            let ids = self.batch.insert(parcels).await?;
            for (entry, id) in entries.iter().zip(ids) {
                self.written.insert(*entry, Written::Inserted(id));
            }
            self.changes.inserted += parcels.len();
        }
        for (entry, parcel, version) in updates {
            let id = self.batch.supersede(&parcel, &[version]).await?;
            self.written.insert(entry, Written::Updated(id));
            self.changes.updated += 1;
        }
        self.changes.quarantined += quarantine.len();
        Ok(self.batch.quarantine(&quarantine).await?)
    }

    /// The checks over the whole upload: parcels whose key turned out to occur twice are
    /// withdrawn and quarantined; in replace mode, parcels absent from the upload are retired.
    async fn finish(&mut self) -> Result<(), StoreError> {
        let rejected = self.ledger.finish();
        let mut withdraw: Vec<(usize, VersionId)> = Vec::new();
        let mut quarantine = Vec::new();
        for entry in rejected {
            match self.written.remove(&entry) {
                Some(Written::Inserted(id)) => {
                    self.changes.inserted -= 1;
                    withdraw.push((entry, id));
                }
                Some(Written::Updated(id)) => {
                    self.changes.updated -= 1;
                    withdraw.push((entry, id));
                }
                Some(Written::Held(parcel)) => {
                    quarantine.push(quarantine_record(&self.ledger, entry, json!({ "parcel": parcel })));
                }
                // Unchanged: the stored version is the parcel, and it stays.
                Some(Written::Unchanged) => {
                    self.changes.unchanged -= 1;
                    let key = self.ledger.key(entry).cloned();
                    let stored = match key {
                        Some(key) => self.store.current_by_key(&key).await?.map(|v| v.parcel),
                        None => None,
                    };
                    quarantine.push(quarantine_record(&self.ledger, entry, json!({ "parcel": stored })));
                }
                None => {}
            }
        }
        let ids: Vec<VersionId> = withdraw.iter().map(|(_, id)| *id).collect();
        let parcels = self.batch.withdraw(&ids).await?;
        for ((entry, _), parcel) in withdraw.iter().zip(parcels) {
            quarantine.push(quarantine_record(&self.ledger, *entry, json!({ "parcel": parcel })));
        }
        self.changes.quarantined += quarantine.len();
        self.batch.quarantine(&quarantine).await?;
        if self.mode == Mode::ReplaceCommune {
            let retire = self.current.absent_from(&self.uploaded);
            self.batch.retire(&retire).await?;
            self.changes.retired = retire.len();
        }
        Ok(())
    }
}

/// One province's part of a national load: imported as a batch of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The province its records are in; `None` for the files whose first record names no known
    /// commune (they go together, and their records are judged as any).
    pub province: Option<landdb_model::ProvinceCode>,
    pub paths: Vec<PathBuf>,
}

/// Splits `paths` into one delivery a province, by the commune each file's first record names
/// (folders walked: each file or archive in them is placed on its own). Paths of one province
/// only come back as given, one delivery: a batch exactly as `landdb import` of them always was.
pub fn deliveries(paths: &[PathBuf], reference: &ReferenceData, options: &Options) -> Vec<Delivery> {
    // A path that cannot be walked is imported as given, where the error is reported in full.
    let Ok(units) = crate::source::units(paths) else {
        return vec![Delivery { province: None, paths: paths.to_vec() }];
    };
    static PEEKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let scratch = std::env::temp_dir().join(format!(
        "landdb-deliveries-{}-{}",
        std::process::id(),
        PEEKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let provinces: Vec<Option<landdb_model::ProvinceCode>> = {
        use rayon::prelude::*;
        units
            .par_iter()
            .enumerate()
            .map(|(i, unit)| pipeline::province_of(unit, &scratch.join(i.to_string()), reference, options))
            .collect()
    };
    let _ = std::fs::remove_dir_all(&scratch);
    let mut by_province: std::collections::BTreeMap<Option<landdb_model::ProvinceCode>, Vec<PathBuf>> =
        std::collections::BTreeMap::new();
    for (unit, province) in units.into_iter().zip(provinces) {
        by_province.entry(province).or_default().push(unit);
    }
    if by_province.len() <= 1 {
        let province = by_province.into_keys().next().flatten();
        return vec![Delivery { province, paths: paths.to_vec() }];
    }
    by_province.into_iter().map(|(province, paths)| Delivery { province, paths }).collect()
}

/// The operator's import of `paths` as one batch (see [`import_submission`]).
pub async fn import<S: ParcelStore>(
    store: &S,
    paths: &[PathBuf],
    reference: &ReferenceData,
    options: &Options,
    mode: Mode,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Imported, ImportError> {
    import_submission(store, &Submission::operator(paths), reference, options, mode, progress).await
}

/// Imports a submission as one batch. Parcels are loaded while the files are still being read;
/// the batch commits only when everything was read, judged and written, and is rolled back
/// otherwise. `options.area` confines what it may change.
pub async fn import_submission<S: ParcelStore>(
    store: &S,
    submission: &Submission<'_>,
    reference: &ReferenceData,
    options: &Options,
    mode: Mode,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Imported, ImportError> {
    let paths = submission.paths;
    let names = &submission.names;
    let hash = content_hash(paths, mode, &submission.submitter).map_err(|e| names.error(e))?;
    // The hash covers the submitter: an earlier batch found here is the submitter's own.
    let already = |earlier: BatchInfo| {
        let report: ImportReport = ImportReport {
            batch: Some(json!({ "id": earlier.id, "committed_at": earlier.committed_at })),
            ..ImportReport::default()
        };
        Imported { report, changes: Changes::default(), batch: earlier, already_imported: true }
    };
    if let Some(earlier) = store.batch_by_content_hash(&hash).await? {
        return Ok(already(earlier));
    }
    let batch = store
        .begin_batch(NewBatch {
            source: submission.source(),
            province_code: None,
            content_hash: Some(hash.clone()),
            mode: mode.name().into(),
        })
        .await;
    let batch = match batch {
        Ok(batch) => batch,
        // The same content imported at the same time: its batch holds the hash (PostgreSQL made
        // this one wait for it, then refused the hash twice). Nothing to do, as for a re-upload.
        Err(e) => match store.batch_by_content_hash(&hash).await {
            Ok(Some(earlier)) => return Ok(already(earlier)),
            _ => return Err(e.into()),
        },
    };
    let mut loader = Loader {
        store,
        batch,
        mode,
        ledger: Ledger::default(),
        current: CurrentInArea::new(WriteArea::new(options.area.as_ref(), reference)),
        uploaded: HashSet::new(),
        written: HashMap::new(),
        changes: Changes::default(),
    };
    // One folder per import, even for the same content twice at once in one process.
    static IMPORTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let scratch = std::env::temp_dir().join(format!(
        "landdb-import-{}-{}-{}",
        std::process::id(),
        IMPORTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        hash.get(7..19).unwrap_or("x")
    ));
    let started = std::time::Instant::now();

    // The reader runs on its own thread (and rayon's), handing judged chunks over a short queue;
    // this thread loads them. Either side stopping stops the other.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Processed>>(2);
    let runtime = tokio::runtime::Handle::current();
    let (read, loaded) = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let tx = tx;
                let read = || {
                    pipeline::stream(paths, &scratch, names, reference, options, progress, &|chunk| {
                        tx.send(chunk).map_err(|_| SourceError::Unreadable {
                            file: paths.first().cloned().unwrap_or_default(),
                            reason: "the import stopped".into(),
                        })
                    })
                };
                // Threads of its own: a reader waiting for its loader holds them, never those of
                // another import of the process (a national load) or of the checks over a whole
                // upload.
                match rayon::ThreadPoolBuilder::new()
                    .num_threads(rayon::current_num_threads())
                    .thread_name(|i| format!("landdb-read-{i}"))
                    .build()
                {
                    Ok(threads) => threads.install(read),
                    Err(_) => read(),
                }
            });
            let loaded = runtime.block_on(async {
                while let Ok(chunk) = rx.recv() {
                    loader.take(chunk).await?;
                }
                Ok::<_, ImportError>(())
            });
            drop(rx);
            let read = reader.join().unwrap_or_else(|_| {
                Err(names.error(SourceError::Unreadable {
                    file: paths.first().cloned().unwrap_or_default(),
                    reason: "the reader failed".into(),
                }))
            });
            (read, loaded)
        })
    });
    let _ = std::fs::remove_dir_all(&scratch);
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "read, judged and written");
    let layers = match (read, loaded) {
        (Ok(layers), Ok(())) => layers,
        // The loader stopping (the store failed) stops the reader with "the import stopped": the
        // loader's error is the cause, never the input's.
        (_, Err(e)) => {
            let _ = loader.batch.rollback().await;
            return Err(e);
        }
        (Err(e), Ok(())) => {
            let _ = loader.batch.rollback().await;
            return Err(e.into());
        }
    };
    if let Err(e) = loader.finish().await {
        let _ = loader.batch.rollback().await;
        return Err(e.into());
    }
    let mut report = loader.ledger.report(layers);
    let changes = loader.changes.clone();
    let province = loader.current.communes().first().and_then(|c| reference.province_of(c)).map(|p| p.to_string());
    let summary = json!({
        "province": province,
        "input": report.input,
        "accepted": report.accepted,
        "accepted_with_warnings": report.accepted_with_warnings,
        "repaired": report.repaired,
        "rejected": report.rejected,
        "changes": changes,
    });
    let info = loader.batch.commit(summary).await?;
    // The batch has committed: a failure here is only worth a warning.
    if changes.inserted + changes.updated >= ANALYZE_FROM
        && let Err(e) = store.analyze().await
    {
        tracing::warn!(error = %e, "the batch committed, but refreshing the planner's statistics failed");
    }
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "committed");
    report.batch = Some(json!({ "id": info.id, "committed_at": info.committed_at }));
    Ok(Imported { report, changes, batch: info, already_imported: false })
}
