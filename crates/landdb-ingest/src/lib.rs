//! The import pipeline of landdb: reads provincial cadastral files and turns each record into a
//! canonical [`landdb_model::Parcel`], or into a [`RecordError`] that says which file, feature and
//! field was wrong.

pub mod area;
pub mod crs;
pub mod current;
pub mod fields;
pub mod geometry;
pub mod import;
pub mod load;
pub mod names;
pub mod normalize;
pub mod overlap;
pub mod pipeline;
pub mod profiles;
pub mod source;
pub mod verdict;

use std::path::PathBuf;

/// Why one source record could not become a parcel.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}, feature {feature}{}: {reason}", field.as_ref().map(|f| format!(", field {f}")).unwrap_or_default())]
pub struct RecordError {
    pub file: PathBuf,
    /// 1-based position of the feature in its layer.
    pub feature: usize,
    pub field: Option<String>,
    pub reason: String,
}

/// Why a whole source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {file}: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("cannot open {file}: {reason}")]
    Unreadable { file: PathBuf, reason: String },
    #[error("cannot expand {archive}: {problem}")]
    Archive { archive: PathBuf, problem: source::ArchiveProblem },
}

/// A folder of its own for a test, removed when dropped (property tests make thousands).
#[cfg(test)]
pub(crate) struct TestDir(pub std::path::PathBuf);

#[cfg(test)]
impl TestDir {
    pub(crate) fn new(what: &str) -> TestDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("landdb-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test folder");
        TestDir(dir)
    }
}

#[cfg(test)]
impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
