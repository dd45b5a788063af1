//! Where audit entries wait while the primary database is away (issue 22): a local append-only
//! file, one JSON line an entry, fsynced before the answers it records leave. When the primary
//! answers again the writer drains it, oldest first, into the chain, and cuts what it wrote from
//! the front of the file. A line cut short by a crash was never fsynced, so its answer never
//! left: it is dropped when the file is read.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use landdb_access::AuditEvent;

#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    /// Entries in the file, as this process wrote and cut them.
    depth: Mutex<usize>,
}

impl Spool {
    /// The spool at `path` (its directory made if needed), with what an earlier run left in it.
    pub fn open(path: &Path) -> std::io::Result<Spool> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let spool = Spool { path: path.to_owned(), depth: Mutex::new(0) };
        let left = spool.read()?.len();
        *spool.lock() = left;
        Ok(spool)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.depth.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Entries waiting.
    pub fn depth(&self) -> usize {
        *self.lock()
    }

    /// Appends `events` and waits until they are on disk.
    pub fn append(&self, events: &[AuditEvent]) -> std::io::Result<()> {
        let mut depth = self.lock();
        let mut lines = Vec::with_capacity(events.len() * 256);
        for e in events {
            serde_json::to_writer(&mut lines, e).map_err(std::io::Error::other)?;
            lines.push(b'\n');
        }
        let mut file = owner_only().create(true).append(true).open(&self.path)?;
        file.write_all(&lines)?;
        file.sync_data()?;
        *depth += events.len();
        Ok(())
    }

    /// Every entry waiting, oldest first.
    pub fn read(&self) -> std::io::Result<Vec<AuditEvent>> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut events = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            match serde_json::from_str(&line) {
                Ok(e) => events.push(e),
                // Only the last line can be torn (a crash in the middle of a write), and its
                // answer never left: what follows it would be a bug, said loudly.
                Err(e) => {
                    tracing::warn!(spool = %self.path.display(), error = %e, "a torn line in the audit spool dropped")
                }
            }
        }
        Ok(events)
    }

    /// Cuts the first `n` entries (written into the chain), keeping the rest: the file is
    /// written anew beside and renamed over.
    pub fn cut(&self, n: usize) -> std::io::Result<()> {
        let mut depth = self.lock();
        let rest = self.read()?.split_off(n.min(*depth));
        let fresh = self.path.with_extension("cut");
        {
            let mut file = owner_only().create(true).write(true).truncate(true).open(&fresh)?;
            for e in &rest {
                serde_json::to_writer(&mut file, e).map_err(std::io::Error::other)?;
                file.write_all(b"\n")?;
            }
            file.sync_data()?;
        }
        std::fs::rename(&fresh, &self.path)?;
        *depth = rest.len();
        Ok(())
    }
}

/// Audit entries say who received what: the spool is its owner's alone (0600).
fn owner_only() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn event(n: i64) -> AuditEvent {
        AuditEvent {
            at: AuditEvent::new_at(chrono::Utc::now()),
            agency: Arc::from("tax"),
            key_id: Arc::from("k"),
            method: "GET".into(),
            endpoint: "/parcels/at".into(),
            params: format!("n={n}"),
            purpose: Arc::from("thuế"),
            status: 200,
            parcels: 1,
            personal: vec![n],
            versions: vec![n],
            communes: vec![20194],
        }
    }

    #[test]
    fn entries_wait_in_order_survive_a_reopen_and_are_cut_from_the_front() {
        let path = std::env::temp_dir().join(format!("landdb-spool-{}/spool.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let spool = Spool::open(&path).expect("open");
        spool.append(&[event(1), event(2)]).expect("append");
        spool.append(&[event(3)]).expect("append");
        let again = Spool::open(&path).expect("reopen");
        assert_eq!(again.depth(), 3);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).expect("file").permissions().mode() & 0o777, 0o600);
        }
        let params: Vec<String> = again.read().expect("read").into_iter().map(|e| e.params).collect();
        assert_eq!(params, ["n=1", "n=2", "n=3"]);
        again.cut(2).expect("cut");
        let left = again.read().expect("read");
        assert_eq!((again.depth(), left.len(), left[0].params.as_str()), (1, 1, "n=3"));
        // A torn last line (a crash mid-write) is dropped, what came before kept.
        std::fs::OpenOptions::new().append(true).open(&path).expect("file").write_all(b"{\"at\":").expect("torn");
        assert_eq!(Spool::open(&path).expect("reopen").depth(), 1);
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}
