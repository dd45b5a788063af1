//! Uploads from the provinces: a multipart upload (a file, or a zip of a Shapefile, a MapInfo
//! table, several files) is written to disk as it arrives (`upload.rs`) and starts an import job,
//! the same atomic import `landdb import` runs, in a worker process of its own ([`worker`]). The
//! job reports its progress while it reads, then the verdict counts, the changes and the full
//! report; the records it rejected can be downloaded as GeoJSON.
//!
//! A job belongs to the agency that uploaded it, and so does its batch: the import's identity
//! includes the agency, so the same bytes from another agency start a batch of their own and never
//! hand over the first one. Status, report, quarantine and errors name files as the client sent
//! them (or their path inside the uploaded zip), never where this server keeps them.
//!
//! What an agency may have at once is bounded: [`JobLimits::per_agency`] uploads queued or running
//! (429 past it), one import of the same upload (409), and at most [`JobLimits::workers`] worker
//! processes run on the machine (the rest wait, queued). Each job has a directory of its own,
//! removed when the job ends however it ends ([`Slot`]); directories left by a server that died
//! are removed when the next one starts.
//!
//! Jobs live in the server's memory: a restart forgets the job, never the import (a committed
//! batch is in the store, with its report and quarantine; an unfinished one was rolled back).

pub mod worker;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use landdb_ingest::import::Mode;
use landdb_model::BatchId;
use landdb_store::{AnyStore, ParcelStore, QuarantinedRecord};
use serde::Serialize;
use serde_json::{Value, json};

use crate::ogc::{ApiError, Link};
use crate::scope::UploadStore;
use crate::upload::{Received, UploadLimits};
use worker::{Assignment, Cause, Finished, WorkerCommand, WorkerLimits};

/// Workers a job may start when the store fails under it (the first try included), and the wait
/// before the second (tripled before each next one).
const STORE_ATTEMPTS: usize = 3;
const STORE_RETRY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

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
    /// The upload's fingerprint (name, mode, content): the same upload twice at once is refused.
    fingerprint: [u8; 32],
    records_read: AtomicUsize,
    /// Workers started for it: more than one when the store failed and the import was tried
    /// again.
    attempts: AtomicUsize,
    outcome: Mutex<Outcome>,
}

#[derive(Debug)]
struct Outcome {
    state: State,
    error: Option<String>,
    cause: Option<Cause>,
    finished: Option<Finished>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Job {
    fn lock(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn state(&self) -> State {
        self.lock().state
    }

    fn is_active(&self) -> bool {
        matches!(self.state(), State::Queued | State::Running)
    }

    /// The batch the job committed (or found already imported).
    pub fn batch(&self) -> Option<BatchId> {
        self.lock().finished.as_ref().map(|f| BatchId(f.batch_id))
    }

    /// The job as its status document.
    pub fn status(&self, base: &str) -> Value {
        let o = self.lock();
        let report = o.finished.as_ref().map(|f| {
            let r = &f.report;
            json!({
                "input": r["input"],
                "accepted": r["accepted"],
                "accepted_with_warnings": r["accepted_with_warnings"],
                "repaired": r["repaired"],
                "rejected": r["rejected"],
                "reasons": r["reasons"],
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
            "attempts": self.attempts.load(Ordering::Relaxed),
            "error": o.error,
            "cause": o.cause,
            "report": report,
            "changes": o.finished.as_ref().map(|f| &f.changes),
            "batch": o.finished.as_ref().map(|f| json!({ "id": f.batch_id, "already_imported": f.already_imported })),
            "links": [
                Link::new(format!("{base}/jobs/{id}"), "status", "application/json", "this job"),
                Link::new(format!("{base}/jobs/{id}/report"), "report", "application/json", "the full report: every record not plainly accepted, with its reasons"),
                Link::new(format!("{base}/jobs/{id}/quarantine"), "quarantine", "application/geo+json", "the rejected records as read, with their reasons"),
            ],
        })
    }

    /// The full import report, once the job has one.
    pub fn report(&self) -> Option<Value> {
        self.lock().finished.as_ref().map(|f| json!({ "report": f.report, "changes": f.changes, "batch": f.batch }))
    }
}

/// What uploads and their workers may take.
#[derive(Debug, Clone, Copy)]
pub struct JobLimits {
    pub upload: UploadLimits,
    /// Uploads an agency may have queued or running at once.
    pub per_agency: usize,
    /// Worker processes running at once on this server (the others' jobs wait, queued).
    pub workers: usize,
    pub worker: WorkerLimits,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits { upload: UploadLimits::default(), per_agency: 2, workers: 2, worker: WorkerLimits::default() }
    }
}

/// How long an agency at its job limit is told to wait.
const RETRY_JOBS: Duration = Duration::from_secs(30);

/// The jobs of this server, where their uploads are kept, and how their workers start.
#[derive(Debug)]
pub struct Jobs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// This server's job directories go here (one a job).
    dir: PathBuf,
    next: AtomicU64,
    registry: Mutex<Registry>,
    command: WorkerCommand,
    reference_dir: Option<PathBuf>,
    limits: JobLimits,
    workers: Arc<tokio::sync::Semaphore>,
}

#[derive(Debug, Default)]
struct Registry {
    jobs: BTreeMap<u64, Arc<Job>>,
    /// Uploads of each agency being received, queued or running.
    active: HashMap<String, usize>,
}

impl Inner {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An agency's place for one upload: its job id and directory. Dropping it (the upload refused,
/// the job ended, its task gone) removes the directory and frees the place.
#[derive(Debug)]
pub struct Slot {
    pub id: u64,
    pub dir: PathBuf,
    agency: String,
    inner: Arc<Inner>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(job = self.id, error = %e, "cannot remove a job's directory");
        }
        let mut registry = self.inner.registry();
        if let Some(n) = registry.active.get_mut(&self.agency) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                registry.active.remove(&self.agency);
            }
        }
    }
}

impl Jobs {
    /// Job directories go under `root`, in a directory of this process's own; those of
    /// processes that are gone are removed first. Workers start with `command`.
    pub fn new(
        root: &Path,
        command: WorkerCommand,
        reference_dir: Option<PathBuf>,
        limits: JobLimits,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        sweep(root);
        // Numbered from the clock so that ids are not reused across restarts.
        let start = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(1);
        let dir = root.join(format!("{}-{start}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let workers = Arc::new(tokio::sync::Semaphore::new(limits.workers.max(1)));
        Ok(Jobs {
            inner: Arc::new(Inner {
                dir,
                next: AtomicU64::new(start),
                registry: Mutex::new(Registry::default()),
                command,
                reference_dir,
                limits,
                workers,
            }),
        })
    }

    /// Where this server's job directories are (one a job while it lasts).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn limits(&self) -> &JobLimits {
        &self.inner.limits
    }

    /// The job, when the caller may see it: another agency's job does not exist for it.
    pub fn get(&self, id: &str, access: &crate::access::Access) -> Result<Arc<Job>, ApiError> {
        let missing = || ApiError::not_found(format!("there is no job {id}"));
        let id: u64 = id.parse().map_err(|_| missing())?;
        let registry = self.inner.registry();
        registry
            .jobs
            .get(&id)
            .filter(|j| access.is_operator() || j.agency == access.agency())
            .cloned()
            .ok_or_else(missing)
    }

    /// How many jobs are in each state.
    pub fn count_by_state(&self) -> Vec<(&'static str, usize)> {
        let registry = self.inner.registry();
        [
            (State::Queued, "queued"),
            (State::Running, "running"),
            (State::Succeeded, "succeeded"),
            (State::Failed, "failed"),
        ]
        .into_iter()
        .map(|(state, name)| (name, registry.jobs.values().filter(|j| j.state() == state).count()))
        .collect()
    }

    /// A place for one more upload of `agency`, or a 429 when it has as many as it may.
    pub fn admit(&self, agency: &str) -> Result<Slot, ApiError> {
        let limit = self.inner.limits.per_agency;
        let id = {
            let mut registry = self.inner.registry();
            let active = registry.active.entry(agency.to_owned()).or_default();
            if *active >= limit {
                return Err(ApiError::too_many(
                    format!(
                        "agency {agency} has {limit} uploads being received, queued or running, as many as it may: \
                         send this one when one of them has finished"
                    ),
                    RETRY_JOBS,
                ));
            }
            *active += 1;
            self.inner.next.fetch_add(1, Ordering::Relaxed)
        };
        let slot = Slot {
            id,
            dir: self.inner.dir.join(id.to_string()),
            agency: agency.to_owned(),
            inner: Arc::clone(&self.inner),
        };
        std::fs::create_dir_all(&slot.dir).map_err(|e| ApiError::internal(&e))?;
        Ok(slot)
    }

    /// Starts the import of `upload` in a worker process, confined as `target` says, and returns
    /// the job at once (queued until a worker is free). The same upload while an import of it is
    /// queued or running is a 409 naming that job.
    pub fn start(&self, slot: Slot, upload: Received, target: &UploadStore<'_>) -> Result<Arc<Job>, ApiError> {
        let Some(file) = upload.path.file_name().and_then(|f| f.to_str()).map(str::to_owned) else {
            return Err(ApiError::internal(&"an upload was written without a file name"));
        };
        let database = target.connection()?;
        let job = Arc::new(Job {
            id: slot.id,
            agency: slot.agency.clone(),
            file: upload.shown.clone(),
            mode: upload.mode,
            submitted_at: chrono::Utc::now(),
            fingerprint: upload.fingerprint,
            records_read: AtomicUsize::new(0),
            attempts: AtomicUsize::new(0),
            outcome: Mutex::new(Outcome {
                state: State::Queued,
                error: None,
                cause: None,
                finished: None,
                finished_at: None,
            }),
        });
        {
            let mut registry = self.inner.registry();
            if let Some(earlier) = registry
                .jobs
                .values()
                .find(|j| j.agency == job.agency && j.fingerprint == job.fingerprint && j.is_active())
            {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "AlreadyImporting",
                    format!("this upload is already being imported (job {})", earlier.id),
                ));
            }
            registry.jobs.insert(job.id, Arc::clone(&job));
        }
        let assignment = Assignment {
            database,
            reference_dir: self.inner.reference_dir.clone(),
            file,
            shown: upload.shown,
            agency: slot.agency.clone(),
            mode: upload.mode.name().to_owned(),
            area: target.area(),
            limits: self.inner.limits.worker,
            server: std::process::id(),
        };
        let running = Arc::clone(&job);
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            // Queued until a worker may start; the slot goes with the job and its directory is
            // removed when the job ends.
            let permit = Arc::clone(&inner.workers).acquire_owned().await;
            running.lock().state = State::Running;
            let command = inner.command.clone();
            let worker_job = Arc::clone(&running);
            let result = tokio::task::spawn_blocking(move || {
                let progress = |n: usize| worker_job.records_read.store(n, Ordering::Relaxed);
                // An import is one transaction, and an upload already committed is recognised by
                // its content: after the store failed, trying again is safe.
                let mut attempt = 1;
                let result = loop {
                    worker_job.attempts.store(attempt, Ordering::Relaxed);
                    let result = command.run(&assignment, &slot.dir, &progress);
                    match &result {
                        Err(failure) if failure.cause == Cause::Store && attempt < STORE_ATTEMPTS => {
                            let wait = STORE_RETRY_WAIT * 3u32.pow(u32::try_from(attempt - 1).unwrap_or(0));
                            tracing::warn!(job = worker_job.id, attempt, error = %failure.error, ?wait, "the store failed during an import; trying again");
                            std::thread::sleep(wait);
                            attempt += 1;
                        }
                        _ => break result,
                    }
                };
                drop(slot);
                result
            })
            .await
            .unwrap_or_else(|e| {
                Err(worker::Failure {
                    error: format!("the import worker's supervisor failed: {e}"),
                    cause: Cause::Worker,
                })
            });
            drop(permit);
            let mut o = running.lock();
            o.finished_at = Some(chrono::Utc::now());
            match result {
                Ok(finished) => {
                    if let Some(n) = finished.report["input"].as_u64() {
                        running.records_read.store(usize::try_from(n).unwrap_or(usize::MAX), Ordering::Relaxed);
                    }
                    tracing::info!(job = running.id, batch = finished.batch_id, "upload imported");
                    o.state = State::Succeeded;
                    o.finished = Some(finished);
                }
                Err(failure) => {
                    tracing::warn!(job = running.id, cause = ?failure.cause, error = %failure.error, "upload failed");
                    o.state = State::Failed;
                    o.error = Some(failure.error);
                    o.cause = Some(failure.cause);
                }
            }
        });
        Ok(job)
    }

    /// Queued and running jobs, for `/health`.
    pub fn in_progress(&self) -> (usize, usize) {
        let registry = self.inner.registry();
        let count = |state| registry.jobs.values().filter(|j| j.state() == state).count();
        (count(State::Queued), count(State::Running))
    }
}

/// Removes the job directories of servers that are no longer running (named `PID-…`).
fn sweep(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.split('-').next()).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    tracing::info!(dir = %entry.path().display(), "removed the job directories of a server that stopped")
                }
                Err(e) => {
                    tracing::warn!(dir = %entry.path().display(), error = %e, "cannot remove stale job directories")
                }
            }
        }
    }
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
    let records = store.quarantined(batch).await.map_err(|e| ApiError::store(&e))?;
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

    /// Job directories of a server that is gone are removed at start; a live one's stay.
    #[test]
    fn directories_of_servers_that_are_gone_are_swept() {
        let root = std::env::temp_dir().join(format!("landdb-sweep-test-{}", std::process::id()));
        let gone = root.join("4000000000-1").join("17");
        let live = root.join("1-1").join("18");
        for dir in [&gone, &live] {
            std::fs::create_dir_all(dir).expect("dir");
            std::fs::write(dir.join("upload.geojson"), "{}").expect("file");
        }
        let command = WorkerCommand { program: PathBuf::from("/bin/false"), args: Vec::new() };
        let jobs = Jobs::new(&root, command, None, JobLimits::default()).expect("jobs");
        assert!(!root.join("4000000000-1").exists(), "a dead server's directories are removed");
        assert!(live.join("upload.geojson").exists(), "a running process's are kept (pid 1 always runs)");
        assert!(jobs.dir().is_dir() && jobs.dir().starts_with(&root));
        let _ = std::fs::remove_dir_all(&root);
    }

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
