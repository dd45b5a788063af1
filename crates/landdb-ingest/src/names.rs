//! How an import names the files it read: as the submitter knows them (the path given on the
//! command line, the name an uploader gave its file, the path inside an uploaded zip), never where
//! the server keeps them. Reports, quarantine rows and errors name files only through this, so a
//! server's scratch directory or `$TMPDIR` cannot reach an uploader.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::SourceError;
use crate::source::ArchiveProblem;

/// The inputs of one import with the names to show for them, and the archives extracted so far.
#[derive(Debug)]
pub struct SourceNames {
    inputs: Vec<(PathBuf, String)>,
    /// Where each zip was extracted, and the zip: contents are named `zip name/inner path`.
    archives: Mutex<Vec<(PathBuf, PathBuf)>>,
}

impl SourceNames {
    /// Each path shown as given: what the operator typed is what the operator sees.
    pub fn as_given(paths: &[PathBuf]) -> Self {
        Self::shown_as(paths.iter().map(|p| (p.clone(), p.display().to_string())).collect())
    }

    /// Each path shown under the name its submitter gave it.
    pub fn shown_as(inputs: Vec<(PathBuf, String)>) -> Self {
        Self { inputs, archives: Mutex::new(Vec::new()) }
    }

    /// Notes that `archive` was extracted into `target`.
    pub fn extracted(&self, archive: &Path, target: &Path) {
        self.archives
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((target.to_owned(), archive.to_owned()));
    }

    /// The name to show for a file read from `path`.
    pub fn shown(&self, path: &Path) -> String {
        let archive = {
            let archives = self.archives.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            archives.iter().find_map(|(target, zip)| Some((zip.clone(), path.strip_prefix(target).ok()?.to_owned())))
        };
        if let Some((zip, inner)) = archive {
            return join(&self.shown(&zip), &inner);
        }
        for (input, name) in &self.inputs {
            if let Ok(inner) = path.strip_prefix(input) {
                return join(name, inner);
            }
        }
        // Not under any input: the file name alone, never the directory it sits in.
        path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }

    /// `path` as it is to be shown, as a path (the type reports keep).
    pub fn shown_path(&self, path: &Path) -> PathBuf {
        PathBuf::from(self.shown(path))
    }

    /// Every server path in `text` (a message from GDAL or the OS) replaced by its shown name.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        let archives = self.archives.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        // Longest first, so that a directory does not replace the start of a file inside it.
        let mut known: Vec<(String, String)> = archives
            .iter()
            .map(|(target, zip)| (target.display().to_string(), self.shown(zip)))
            .chain(self.inputs.iter().map(|(p, name)| (p.display().to_string(), name.clone())))
            .filter(|(server, _)| !server.is_empty())
            .collect();
        known.sort_by_key(|(server, _)| std::cmp::Reverse(server.len()));
        for (server, shown) in known {
            out = out.replace(&server, &shown);
        }
        out
    }

    /// The error with its file named as shown, and server paths in its reason scrubbed.
    pub fn error(&self, error: SourceError) -> SourceError {
        match error {
            SourceError::Read { file, source } => {
                let reason = self.scrub(&source.to_string());
                SourceError::Read { file: self.shown_path(&file), source: std::io::Error::new(source.kind(), reason) }
            }
            SourceError::Unreadable { file, reason } => {
                SourceError::Unreadable { file: self.shown_path(&file), reason: self.scrub(&reason) }
            }
            SourceError::Archive { archive, problem } => {
                let problem = match problem {
                    ArchiveProblem::Unreadable(reason) => ArchiveProblem::Unreadable(self.scrub(&reason)),
                    ArchiveProblem::Entry { entry, reason } => {
                        ArchiveProblem::Entry { entry, reason: self.scrub(&reason) }
                    }
                    other => other,
                };
                SourceError::Archive { archive: self.shown_path(&archive), problem }
            }
        }
    }
}

fn join(name: &str, inner: &Path) -> String {
    if inner.as_os_str().is_empty() { name.to_owned() } else { format!("{name}/{}", inner.display()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_paths_become_the_names_the_submitter_gave() {
        let names = SourceNames::shown_as(vec![(PathBuf::from("/srv/jobs/17/upload.zip"), "Hải Châu.zip".into())]);
        names.extracted(Path::new("/srv/jobs/17/upload.zip"), Path::new("/tmp/landdb-import-1-ab/zip-0"));
        names.extracted(
            Path::new("/tmp/landdb-import-1-ab/zip-0/inner.zip"),
            Path::new("/tmp/landdb-import-1-ab/zip-1"),
        );
        assert_eq!(names.shown(Path::new("/srv/jobs/17/upload.zip")), "Hải Châu.zip");
        assert_eq!(names.shown(Path::new("/tmp/landdb-import-1-ab/zip-0/a/20194.shp")), "Hải Châu.zip/a/20194.shp");
        assert_eq!(names.shown(Path::new("/tmp/landdb-import-1-ab/zip-1/b.gpkg")), "Hải Châu.zip/inner.zip/b.gpkg");
        assert_eq!(names.shown(Path::new("/elsewhere/x.geojson")), "x.geojson");
        let scrubbed = names.scrub("`/tmp/landdb-import-1-ab/zip-0/a/20194.shp' not recognized");
        assert_eq!(scrubbed, "`Hải Châu.zip/a/20194.shp' not recognized");
        let error = names.error(SourceError::Unreadable {
            file: PathBuf::from("/tmp/landdb-import-1-ab/zip-0/a/20194.shp"),
            reason: "cannot open /srv/jobs/17/upload.zip".into(),
        });
        assert_eq!(error.to_string(), "cannot open Hải Châu.zip/a/20194.shp: cannot open Hải Châu.zip");
    }
}
