//! Uploads from the provinces: a multipart upload (a file, or a zip of a Shapefile, a MapInfo
//! table, several files) is written to disk as it arrives and starts an import job, the same
//! atomic import `landdb import` runs. The job reports its progress while it reads, then the
//! verdict counts, the changes and the full report; the records it rejected can be downloaded
//! as GeoJSON.
//!
//! A job belongs to the agency that uploaded it, and so does its batch: the import's identity
//! includes the agency, so the same bytes from another agency start a batch of their own and never
//! hand over the first one. Status, report, quarantine and errors name files as the client sent
//! them (or their path inside the uploaded zip), never where this server keeps them.
//!
//! Jobs live in the server's memory: a restart forgets the job, never the import (a committed
//! batch is in the store, with its report and quarantine; an unfinished one was rolled back).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use landdb_ingest::import::{Imported, Mode, Submission};
use landdb_ingest::pipeline::Options;
use landdb_model::BatchId;
use landdb_model::ReferenceData;
use landdb_store::{AnyStore, ParcelStore, QuarantinedRecord};
use serde::Serialize;
use serde_json::{Value, json};

use crate::ogc::{ApiError, Link};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Running,
    Succeeded,
    Failed,
}

/// One import job.
#[derive(Debug)]
pub struct Job {
    pub id: u64,
    /// The agency that uploaded it: only it (and the operator) may follow it.
    pub agency: String,
    /// The uploaded file's name, as the client gave it.
    pub file: String,
    pub mode: Mode,
    pub submitted_at: chrono::DateTime<chrono::Utc>,
    records_read: AtomicUsize,
    outcome: Mutex<Outcome>,
}

#[derive(Debug)]
struct Outcome {
    state: State,
    error: Option<String>,
    imported: Option<Imported>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Job {
    fn lock(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn state(&self) -> State {
        self.lock().state
    }

    /// The batch the job committed (or found already imported).
    pub fn batch(&self) -> Option<BatchId> {
        self.lock().imported.as_ref().map(|i| i.batch.id)
    }

    /// The job as its status document.
    pub fn status(&self, base: &str) -> Value {
        let o = self.lock();
        let report = o.imported.as_ref().map(|i| {
            let r = &i.report;
            json!({
                "input": r.input,
                "accepted": r.accepted,
                "accepted_with_warnings": r.accepted_with_warnings,
                "repaired": r.repaired,
                "rejected": r.rejected,
                "reasons": r.reasons,
            })
        });
        let id = self.id;
        json!({
            "id": id.to_string(),
            "state": o.state,
            "file": self.file,
            "mode": self.mode.name(),
            "submitted_at": self.submitted_at,
            "finished_at": o.finished_at,
            "records_read": self.records_read.load(Ordering::Relaxed),
            "error": o.error,
            "report": report,
            "changes": o.imported.as_ref().map(|i| &i.changes),
            "batch": o.imported.as_ref().map(|i| json!({ "id": i.batch.id, "already_imported": i.already_imported })),
            "links": [
                Link::new(format!("{base}/jobs/{id}"), "status", "application/json", "this job"),
                Link::new(format!("{base}/jobs/{id}/report"), "report", "application/json", "the full report: every record not plainly accepted, with its reasons"),
                Link::new(format!("{base}/jobs/{id}/quarantine"), "quarantine", "application/geo+json", "the rejected records as read, with their reasons"),
            ],
        })
    }

    /// The full import report, once the job has one.
    pub fn report(&self) -> Option<Value> {
        self.lock().imported.as_ref().map(|i| json!({ "report": i.report, "changes": i.changes, "batch": i.batch }))
    }
}

/// An upload received: the job it starts, where it was written, the name the client gave it,
/// and how to import it.
#[derive(Debug)]
pub struct Upload {
    pub id: u64,
    pub path: PathBuf,
    pub file: String,
    pub mode: Mode,
    pub agency: String,
}

/// The jobs of this server, and where their uploads are kept.
#[derive(Debug)]
pub struct Jobs {
    dir: PathBuf,
    next: AtomicU64,
    jobs: Mutex<BTreeMap<u64, Arc<Job>>>,
}

impl Jobs {
    /// Uploads go under `dir` (one directory a job, removed when the job ends).
    pub fn new(dir: PathBuf) -> Self {
        // Numbered from the clock so that ids are not reused across restarts.
        let start = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(1);
        Jobs { dir, next: AtomicU64::new(start), jobs: Mutex::new(BTreeMap::new()) }
    }

    /// The job, when the caller may see it: another agency's job does not exist for it.
    pub fn get(&self, id: &str, access: &crate::access::Access) -> Result<Arc<Job>, ApiError> {
        let missing = || ApiError::not_found(format!("there is no job {id}"));
        let id: u64 = id.parse().map_err(|_| missing())?;
        let jobs = self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        jobs.get(&id).filter(|j| access.is_operator() || j.agency == access.agency()).cloned().ok_or_else(missing)
    }

    /// How many jobs are in each state.
    pub fn count_by_state(&self) -> Vec<(&'static str, usize)> {
        let jobs = self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        [
            (State::Queued, "queued"),
            (State::Running, "running"),
            (State::Succeeded, "succeeded"),
            (State::Failed, "failed"),
        ]
        .into_iter()
        .map(|(state, name)| (name, jobs.values().filter(|j| j.state() == state).count()))
        .collect()
    }

    /// A new job's id and the directory its upload goes to.
    pub fn reserve(&self) -> Result<(u64, PathBuf), ApiError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir.join(id.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| ApiError::internal(&e))?;
        Ok((id, dir))
    }

    /// Starts the import of `upload` and returns the job at once.
    pub fn start(&self, upload: Upload, store: AnyStore, reference: Arc<ReferenceData>, options: Options) -> Arc<Job> {
        let Upload { id, path: upload, file, mode, agency } = upload;
        let job = Arc::new(Job {
            id,
            agency,
            file,
            mode,
            submitted_at: chrono::Utc::now(),
            records_read: AtomicUsize::new(0),
            outcome: Mutex::new(Outcome { state: State::Queued, error: None, imported: None, finished_at: None }),
        });
        self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, Arc::clone(&job));
        let running = Arc::clone(&job);
        tokio::spawn(async move {
            running.lock().state = State::Running;
            let progress = |n: usize| running.records_read.store(n, Ordering::Relaxed);
            let submission = Submission::upload(&upload, &running.file, &running.agency);
            let result =
                landdb_ingest::import::import_submission(&store, &submission, &reference, &options, mode, &progress)
                    .await;
            let mut o = running.lock();
            o.finished_at = Some(chrono::Utc::now());
            match result {
                Ok(imported) => {
                    running.records_read.store(imported.report.input, Ordering::Relaxed);
                    tracing::info!(job = running.id, batch = imported.batch.id.0, "upload imported");
                    o.state = State::Succeeded;
                    o.imported = Some(imported);
                }
                Err(e) => {
                    tracing::warn!(job = running.id, error = %e, "upload failed");
                    o.state = State::Failed;
                    // The import names files as shown already; scrub once more for any message
                    // that carried a path of its own (the OS's, GDAL's).
                    let message = submission.names.scrub(&e.to_string());
                    o.error = Some(message.replace(&format!("{}/", dir_of(&upload).display()), ""));
                }
            }
            drop(o);
            let _ = std::fs::remove_dir_all(dir_of(&upload));
        });
        job
    }
}

fn dir_of(upload: &Path) -> &Path {
    upload.parent().unwrap_or(upload)
}

/// A file name from a client, reduced to something safe to create: no directories, no
/// surprises; the extension (which says the format) is kept.
pub fn safe_file_name(raw: &str) -> Option<String> {
    let name = raw.rsplit(['/', '\\']).next()?.trim();
    let cleaned: String =
        name.chars().map(|c| if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    let cleaned = cleaned.trim_start_matches('.').to_owned();
    let extension = Path::new(&cleaned).extension()?.to_str()?.to_ascii_lowercase();
    landdb_ingest::source::EXTENSIONS.contains(&extension.as_str()).then_some(cleaned)
}

/// Quarantined records as a GeoJSON feature collection: each feature the record as read (its
/// attributes, and its geometry in the file's own coordinates), with where it came from and why
/// it was rejected.
pub async fn quarantine_geojson(store: &AnyStore, batch: BatchId) -> Result<Value, ApiError> {
    let records = store.quarantined(batch).await.map_err(|e| ApiError::internal(&e))?;
    Ok(json!({
        "type": "FeatureCollection",
        "description": "Rejected records as they were read: coordinates in the uploaded file's own coordinate system",
        "features": records.into_iter().map(quarantine_feature).collect::<Vec<_>>(),
    }))
}

fn quarantine_feature(r: QuarantinedRecord) -> Value {
    let geometry = match r.source.get("geometry") {
        Some(g) if matches!(g.get("type").and_then(Value::as_str), Some("Point" | "MultiPolygon")) => g.clone(),
        _ => Value::Null,
    };
    let mut properties = serde_json::Map::new();
    if let Some(Value::Object(attributes)) = r.source.get("attributes") {
        properties.extend(attributes.clone());
    }
    if let Some(parcel) = r.source.get("parcel") {
        properties.insert("parcel".into(), parcel.clone());
    }
    // Rows name files as the client sent them; an absolute path is from a batch the operator
    // imported on the server, of which only the file name is shown.
    let file = if Path::new(&r.file).is_absolute() {
        Path::new(&r.file).file_name().map_or_else(String::new, |f| f.to_string_lossy().into_owned())
    } else {
        r.file
    };
    properties.insert("_file".into(), json!(file));
    properties.insert("_layer".into(), json!(r.layer));
    properties.insert("_feature".into(), json!(r.feature));
    properties.insert("_parcel_key".into(), json!(r.parcel_key));
    properties.insert("_reasons".into(), r.reasons);
    json!({ "type": "Feature", "geometry": geometry, "properties": properties })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploaded_names_cannot_leave_the_job_directory() {
        assert_eq!(safe_file_name("20194.geojson").as_deref(), Some("20194.geojson"));
        assert_eq!(safe_file_name("../../etc/passwd.zip").as_deref(), Some("passwd.zip"));
        assert_eq!(safe_file_name("C:\\data\\Hải Châu.SHP.zip").as_deref(), Some("Hải_Châu.SHP.zip"));
        assert_eq!(safe_file_name("..zip").as_deref(), None);
        assert_eq!(safe_file_name("notes.txt"), None);
        assert_eq!(safe_file_name(""), None);
    }
}
