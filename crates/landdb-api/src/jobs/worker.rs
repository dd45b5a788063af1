//! The import worker: a job's import runs in a process of its own, `landdb job-run`, never in the
//! serving process. Whatever a hostile file makes the import do (allocate without bound, recurse
//! until the stack overflows, spin, write a huge file, open every descriptor) ends that process,
//! and the job fails with the reason; the server goes on answering.
//!
//! The server writes an [`Assignment`] to the worker's standard input (the store's connection
//! string goes there, not into its arguments or environment, where `ps` would show a password),
//! runs it in the job's directory with `TMPDIR` inside it, and reads [`Report`] lines from its
//! standard output: progress, then one outcome. The worker sets its own limits ([`WorkerLimits`])
//! before it opens anything; the server kills it after the wall-clock limit. A worker that ends
//! without an outcome crashed: its exit status and what it wrote to standard error say how
//! (`memory allocation of … failed` before an abort is the memory limit).

use std::collections::HashSet;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use landdb_ingest::import::{ImportError, Mode, Submission};
use landdb_model::{CommuneCode, ReferenceData};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the server hands a worker: one upload to import, and the limits to run under.
#[derive(Debug, Serialize, Deserialize)]
pub struct Assignment {
    /// The store's connection string (`postgres://…`, or `sqlite://` with an absolute path).
    pub database: String,
    /// Reference files replacing the built-in ones, as the server was started with.
    pub reference_dir: Option<PathBuf>,
    /// The upload's file name inside the job directory (the worker's working directory).
    pub file: String,
    /// The name the client gave it: the only name reports and errors show.
    pub shown: String,
    pub agency: String,
    /// `append` or `replace-commune`.
    pub mode: String,
    /// The communes the upload may change (the agency's area); `None` for a national uploader.
    pub area: Option<Vec<String>>,
    pub limits: WorkerLimits,
    /// The server's process id: the worker ends when its parent is no longer that process.
    pub server: u32,
}

/// The limits a worker sets on itself at start (`setrlimit`), and the wall-clock limit the
/// server holds it to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct WorkerLimits {
    /// Address space: every allocation past it fails, and the worker aborts.
    pub memory_bytes: u64,
    /// CPU time: SIGXCPU at the limit (SIGKILL a second later).
    pub cpu_seconds: u64,
    /// The largest file the worker may write (extracted archives, an embedded store's file).
    pub file_bytes: u64,
    pub open_files: u64,
    /// Wall-clock time, held by the server (a worker blocked on a lock uses no CPU).
    pub wall_seconds: u64,
}

impl Default for WorkerLimits {
    fn default() -> Self {
        WorkerLimits {
            memory_bytes: 4 << 30,
            cpu_seconds: 3600,
            file_bytes: 16 << 30,
            open_files: 1024,
            wall_seconds: 2 * 3600,
        }
    }
}

/// One line of a worker's standard output.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// Records read so far.
    Progress { records_read: usize },
    /// The import committed (or found the content already imported).
    Imported(Box<Finished>),
    /// The import refused the upload or the store failed; nothing was written.
    Failed { error: String, cause: Cause },
}

/// A finished import as the job shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finished {
    pub report: Value,
    pub changes: Value,
    pub batch: Value,
    pub batch_id: i64,
    pub already_imported: bool,
}

/// Whose fault a failed job was: the upload's, the store's, or the worker's (a crash or a limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    Input,
    Store,
    Worker,
}

/// A job that did not finish, with the reason a client may read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Failure {
    pub error: String,
    pub cause: Cause,
}

impl Failure {
    fn worker(error: String) -> Self {
        Failure { error, cause: Cause::Worker }
    }
}

/// How the server starts a worker: the program (this `landdb`, re-executed) and the arguments
/// that make it one.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl WorkerCommand {
    /// `landdb job-run`, from the running executable.
    pub fn this_executable() -> std::io::Result<Self> {
        Ok(WorkerCommand { program: std::env::current_exe()?, args: vec!["job-run".into()] })
    }

    /// Runs `assignment` in `dir` and waits for it (blocking: call from a blocking thread).
    /// `progress` hears the records read as the worker reports them.
    pub fn run(&self, assignment: &Assignment, dir: &Path, progress: &dyn Fn(usize)) -> Result<Finished, Failure> {
        let limits = assignment.limits;
        let scratch = dir.join("tmp");
        std::fs::create_dir_all(&scratch).map_err(|e| start_failed(&e))?;
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .current_dir(dir)
            .env("TMPDIR", &scratch)
            // The keyring this server seals right holders with (a path, not a secret).
            .env(landdb_store::data_keys::ENV, landdb_store::data_keys::keyring_path())
            // What the server keeps secret stays with it.
            .env_remove("DATABASE_URL")
            .env_remove("LANDDB_CURSOR_KEY")
            .env_remove("LANDDB_CHECKPOINT_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| start_failed(&e))?;
        let pid = child.id();
        let given = serde_json::to_vec(assignment).map_err(|e| start_failed(&e))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A worker that died at once shows in its exit status below.
            let _ = stdin.write_all(&given);
        }
        let stderr = child.stderr.take().map(|mut s| {
            std::thread::spawn(move || {
                let mut text = Vec::new();
                let _ = (&mut s).take(STDERR_KEPT).read_to_end(&mut text);
                // Drain the rest so that the worker never blocks on a full pipe.
                let _ = std::io::copy(&mut s, &mut std::io::sink());
                String::from_utf8_lossy(&text).into_owned()
            })
        });
        let (lines_tx, lines_rx) = std::sync::mpsc::channel::<Report>();
        let stdout = child.stdout.take().map(|s| {
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(s).lines() {
                    let Ok(line) = line else { break };
                    match serde_json::from_str::<Report>(&line) {
                        Ok(r) => {
                            if lines_tx.send(r).is_err() {
                                break;
                            }
                        }
                        Err(e) => tracing::warn!(worker = pid, error = %e, "an import worker wrote a line that is not a report"),
                    }
                }
            })
        });
        let deadline = Instant::now() + Duration::from_secs(limits.wall_seconds);
        let mut outcome: Option<Report> = None;
        let mut timed_out = false;
        let status = loop {
            while let Ok(report) = lines_rx.try_recv() {
                match report {
                    Report::Progress { records_read } => progress(records_read),
                    other => outcome = Some(other),
                }
            }
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(worker = pid, error = %e, "cannot wait for an import worker");
                    break None;
                }
            }
            if Instant::now() >= deadline && !timed_out {
                timed_out = true;
                let _ = child.kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(t) = stdout {
            let _ = t.join();
        }
        for report in lines_rx.try_iter() {
            match report {
                Report::Progress { records_read } => progress(records_read),
                other => outcome = Some(other),
            }
        }
        let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
        if !stderr.trim().is_empty() {
            tracing::info!(worker = pid, stderr = %stderr.trim(), "what the import worker said");
        }
        match (outcome, status) {
            (Some(Report::Imported(finished)), Some(s)) if s.success() => Ok(*finished),
            (Some(Report::Failed { error, cause }), Some(s)) if s.success() => Err(Failure { error, cause }),
            (_, status) => {
                let why = if timed_out {
                    format!("took longer than its limit of {} and was stopped", seconds(limits.wall_seconds))
                } else {
                    status.map_or_else(
                        || "ended in a way the server could not see".to_owned(),
                        |s| crash_reason(s, &stderr, &limits),
                    )
                };
                Err(Failure::worker(format!(
                    "the import worker {why}; nothing was imported (an unfinished batch is rolled back) and the \
                     server went on serving"
                )))
            }
        }
    }
}

/// How much of a worker's standard error the server keeps (for the log and the crash reason).
const STDERR_KEPT: u64 = 64 << 10;

fn start_failed(e: &dyn std::fmt::Display) -> Failure {
    tracing::error!(error = %e, "cannot start an import worker");
    Failure::worker("the server could not start an import worker; the operators have the details in its log".into())
}

/// Why a worker ended without an outcome, in words for the uploader.
fn crash_reason(status: ExitStatus, stderr: &str, limits: &WorkerLimits) -> String {
    use std::os::unix::process::ExitStatusExt;
    let memory = || format!("ran out of memory (limit {})", bytes(limits.memory_bytes));
    if stderr.contains("memory allocation of") || stderr.contains("out of memory") {
        return memory();
    }
    if stderr.contains("has overflowed its stack") {
        return "overflowed its stack (the upload nests too deeply)".into();
    }
    match status.signal() {
        Some(24) => format!("used more than its {} of CPU time", seconds(limits.cpu_seconds)),
        Some(25) => format!("tried to write a file larger than its limit of {}", bytes(limits.file_bytes)),
        Some(signal) => format!("was killed by signal {signal}{}", signal_name(signal)),
        None => match status.code() {
            Some(code) => format!("failed (exit status {code})"),
            None => "ended without an exit status".into(),
        },
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        6 => " (SIGABRT)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        15 => " (SIGTERM)",
        _ => "",
    }
}

/// `4 GiB`, `512 MiB`, `100 KiB`.
pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

fn seconds(n: u64) -> String {
    if n == 1 { "1 s".into() } else { format!("{n} s") }
}

/// A line for the server's log, on standard error. Never `eprintln!`: it panics when the server
/// (which reads the pipe) is gone, and a worker must still reach its end then.
macro_rules! note {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), "landdb job-run: {}", format_args!($($arg)*));
    }};
}

/// `landdb job-run`: reads an [`Assignment`] from standard input, sets the limits on itself,
/// imports, and writes [`Report`] lines to standard output. A failed import is an outcome (exit
/// 0); anything else ends the process.
pub fn main() -> ExitCode {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().take(ASSIGNMENT_BYTES).read_to_end(&mut input) {
        note!("cannot read the assignment: {e}");
        return ExitCode::FAILURE;
    }
    let assignment: Assignment = match serde_json::from_slice(&input) {
        Ok(a) => a,
        Err(e) => {
            note!("the assignment on standard input is not valid: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = limit_self(&assignment.limits) {
        note!("cannot set the worker's limits: {e}");
        return ExitCode::FAILURE;
    }
    end_with_the_server(assignment.server);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            note!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(import(&assignment)) {
        Ok(finished) => Report::Imported(Box::new(finished)),
        Err(failure) => Report::Failed { error: failure.error, cause: failure.cause },
    };
    send(&report);
    ExitCode::SUCCESS
}

/// Ends this worker when the server that started it is gone (it was adopted by another
/// process; the server names itself in the assignment, so a server killed before the worker
/// looked is noticed too): nobody would read its outcome, and the next server removes its
/// directory. The import's transaction rolls back with the connection.
fn end_with_the_server(server: u32) {
    use std::os::unix::process::parent_id;
    std::thread::spawn(move || {
        loop {
            if parent_id() != server {
                note!("the server that started this worker is gone; stopping");
                std::process::exit(3);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
}

/// The largest assignment read (a national area names every commune: a few hundred kilobytes).
const ASSIGNMENT_BYTES: u64 = 16 << 20;

fn limit_self(limits: &WorkerLimits) -> std::io::Result<()> {
    use rlimit::{Resource, setrlimit};
    setrlimit(Resource::AS, limits.memory_bytes, limits.memory_bytes)?;
    // SIGXCPU at the soft limit; the hard one a second later is SIGKILL's.
    setrlimit(Resource::CPU, limits.cpu_seconds, limits.cpu_seconds + 1)?;
    setrlimit(Resource::FSIZE, limits.file_bytes, limits.file_bytes)?;
    setrlimit(Resource::NOFILE, limits.open_files, limits.open_files)?;
    // No core files of hostile input.
    setrlimit(Resource::CORE, 0, 0)
}

fn send(report: &Report) {
    let Ok(line) = serde_json::to_string(report) else { return };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn import(a: &Assignment) -> Result<Finished, Failure> {
    let store_failed = |e: &landdb_store::StoreError| store_failure(e);
    let reference = match &a.reference_dir {
        Some(dir) => ReferenceData::with_overrides(dir),
        None => ReferenceData::embedded(),
    }
    .map_err(|e| {
        note!("reference data: {e}");
        Failure::worker("the import worker could not load the reference data".into())
    })?;
    let url = landdb_store::DatabaseUrl::parse(&a.database).map_err(|e| store_failed(&e))?;
    let store = landdb_store::AnyStore::open(&url).await.map_err(|e| store_failed(&e))?;
    let mode = match a.mode.as_str() {
        "append" => Mode::Append,
        "replace-commune" => Mode::ReplaceCommune,
        other => return Err(Failure::worker(format!("the import worker was given an unknown mode {other}"))),
    };
    let area = match &a.area {
        None => None,
        Some(codes) => {
            let set: Result<HashSet<CommuneCode>, _> = codes.iter().map(|c| CommuneCode::parse(c)).collect();
            let set = set.map_err(|e| Failure::worker(format!("the import worker was given a bad area: {e}")))?;
            Some(Arc::new(set))
        }
    };
    let mapping = landdb_ingest::profiles::FieldMapping::builtin()
        .map_err(|e| Failure::worker(format!("the import worker could not load the field mappings: {e}")))?;
    let options = landdb_ingest::pipeline::Options { crs_override: None, mapping, area };
    // The working directory is the job's: the upload is given by its name there, and nothing
    // else the server holds is named to the import.
    let path = PathBuf::from(&a.file);
    let submission = Submission::upload(&path, &a.shown, &a.agency);
    let progress = |n: usize| send(&Report::Progress { records_read: n });
    match landdb_ingest::import::import_submission(&store, &submission, &reference, &options, mode, &progress).await {
        Ok(imported) => Ok(Finished {
            report: serde_json::to_value(&imported.report).unwrap_or(Value::Null),
            changes: serde_json::to_value(&imported.changes).unwrap_or(Value::Null),
            batch: serde_json::to_value(&imported.batch).unwrap_or(Value::Null),
            batch_id: imported.batch.id.0,
            already_imported: imported.already_imported,
        }),
        Err(ImportError::Store(e)) => Err(store_failed(&e)),
        Err(e) => {
            // The import names files as shown already; scrub once more for a message that carried
            // a path of its own (the OS's, GDAL's), and the job directory.
            let text = submission.names.scrub(&e.to_string());
            let dir = std::env::current_dir().map(|d| format!("{}/", d.display())).unwrap_or_default();
            let text = if dir.len() > 1 { text.replace(&dir, "") } else { text };
            Err(Failure { error: text, cause: Cause::Input })
        }
    }
}

/// A store failure as the uploader reads it: an unavailable store says so (and is worth another
/// try); anything else is named (a key conflict is the upload's business) without where the
/// store lives.
fn store_failure(e: &landdb_store::StoreError) -> Failure {
    note!("store: {e}");
    if e.is_unavailable() {
        return Failure {
            error: "the store became unavailable during the import; nothing was imported (the batch was rolled \
                    back): send the upload again once the server is ready"
                .into(),
            cause: Cause::Store,
        };
    }
    if e.is_same_import_committed() {
        return Failure {
            error: "the same upload was being imported at the same time by another job, which committed it first; \
                    nothing was imported twice (send it again to see that batch)"
                .into(),
            cause: Cause::Input,
        };
    }
    match e {
        landdb_store::StoreError::CurrentParcelExists { .. } => {
            Failure { error: format!("{e} (the batch was rolled back; the store is as it was)"), cause: Cause::Input }
        }
        _ => Failure {
            error: "the store refused the import; nothing was imported (the batch was rolled back). The operators \
                    have the details in the server's log"
                .into(),
            cause: Cause::Store,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_an_operator_writes_them() {
        assert_eq!(bytes(4 << 30), "4 GiB");
        assert_eq!(bytes(256 << 20), "256 MiB");
        assert_eq!(bytes(1536 << 20), "1536 MiB");
        assert_eq!(bytes(100), "100 bytes");
    }
}
