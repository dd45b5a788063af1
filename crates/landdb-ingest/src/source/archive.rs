//! Uploads as they arrive: files, folders and zip archives, expanded once each into a folder of
//! its own under the import's scratch folder and walked once. An archive is untrusted input, so
//! extraction is landdb's own, with limits: archives nest at most [`ArchiveLimits::depth`] deep
//! (the upload and the archives directly inside it); only plain files and folders are written
//! (a symbolic link would make the server read its own disk); an entry that would land outside
//! its folder, or that names the same file as another, refuses the archive; the bytes written
//! are counted against a total and against the archive's size (zip bombs). Every refusal names
//! the archive and the entry.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::SourceError;
use crate::names::SourceNames;

/// What an upload's archives may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Archive levels read: 2 is an archive and the archives directly inside it.
    pub depth: usize,
    /// Entries in one archive.
    pub entries: usize,
    /// Bytes written by all the archives of one import.
    pub expanded_bytes: u64,
    /// Bytes written per byte of archive, once an archive has written [`Self::ratio_from`] bytes.
    pub ratio: u64,
    pub ratio_from: u64,
}

impl Default for ArchiveLimits {
    /// A province's delivery is a few hundred communes of four or five files each, a few GB at
    /// most; deflate packs real cadastral files (DBF padding included) well under 100 to 1.
    fn default() -> Self {
        Self { depth: 2, entries: 65_536, expanded_bytes: 16 << 30, ratio: 250, ratio_from: 64 << 20 }
    }
}

/// Why an archive was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveProblem {
    #[error("not a readable zip archive ({0})")]
    Unreadable(String),
    #[error(
        "it is an archive inside an archive inside an archive: at most {max} levels are read (an archive and \
         the archives directly in it); send the inner files instead"
    )]
    TooDeep { max: usize },
    #[error("it has more than {max} entries")]
    TooManyEntries { max: usize },
    #[error("entry {entry:?} is a symbolic link; an archive may hold only files and folders")]
    Symlink { entry: String },
    #[error("entry {entry:?} is a special file (a device, pipe or socket); an archive may hold only files and folders")]
    SpecialFile { entry: String },
    #[error("entry {entry:?} would be written outside the archive's folder (an absolute path or `..`)")]
    Escapes { entry: String },
    #[error("entry {entry:?} names the same file as an earlier entry; which one is meant cannot be told")]
    Duplicate { entry: String },
    #[error("entry {entry:?} is encrypted")]
    Encrypted { entry: String },
    #[error("entry {entry:?} takes the expanded archives past {max} bytes")]
    TooLarge { entry: String, max: u64 },
    #[error(
        "entry {entry:?} takes the archive past {ratio} times its own size ({written} bytes from {size}): a zip \
         bomb, or data that should be sent unpacked"
    )]
    Ratio { entry: String, ratio: u64, written: u64, size: u64 },
    #[error("entry {entry:?}: {reason}")]
    Entry { entry: String, reason: String },
}

/// The files among `paths`: folders walked (in name order), archives expanded under `scratch`.
/// A file that is neither a folder, an archive nor of a kind landdb reads is passed over (side
/// files: `.dbf`, `.prj`…).
pub fn expand(paths: &[PathBuf], scratch: &Path, names: &SourceNames) -> Result<Vec<PathBuf>, SourceError> {
    expand_with(paths, scratch, names, ArchiveLimits::default())
}

/// [`expand`] with other limits.
pub fn expand_with(
    paths: &[PathBuf],
    scratch: &Path,
    names: &SourceNames,
    limits: ArchiveLimits,
) -> Result<Vec<PathBuf>, SourceError> {
    Expansion::new(scratch, names, limits, true).walk_all(paths)
}

/// The files and archives among `paths`, found as [`expand`] finds them (folders walked in name
/// order, a file named twice taken once, side files passed over), the archives left unopened.
pub fn units(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SourceError> {
    let names = SourceNames::as_given(paths);
    Expansion::new(Path::new(""), &names, ArchiveLimits::default(), false).walk_all(paths)
}

struct Expansion<'a> {
    scratch: &'a Path,
    names: &'a SourceNames,
    limits: ArchiveLimits,
    /// Whether archives are expanded and walked, or taken as they are.
    open_archives: bool,
    /// Archives expanded so far: each gets folder `archive-N`.
    archives: usize,
    written: u64,
    files: Vec<PathBuf>,
    /// The files and archives met so far, as canonical paths.
    seen: HashSet<PathBuf>,
}

impl<'a> Expansion<'a> {
    /// A walk that has met nothing yet.
    fn new(scratch: &'a Path, names: &'a SourceNames, limits: ArchiveLimits, open_archives: bool) -> Self {
        Expansion {
            scratch,
            names,
            limits,
            open_archives,
            archives: 0,
            written: 0,
            files: Vec::new(),
            seen: HashSet::new(),
        }
    }

    fn walk_all(mut self, paths: &[PathBuf]) -> Result<Vec<PathBuf>, SourceError> {
        for path in paths {
            if !path.exists() {
                return Err(SourceError::Read {
                    file: path.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                });
            }
            self.walk(path, 0)?;
        }
        Ok(self.files)
    }

    /// `path` inside `depth` archives.
    fn walk(&mut self, path: &Path, depth: usize) -> Result<(), SourceError> {
        let read = |source| SourceError::Read { file: path.to_owned(), source };
        let meta = std::fs::metadata(path).map_err(read)?;
        if meta.is_dir() {
            let mut inside = Vec::new();
            for entry in std::fs::read_dir(path).map_err(read)? {
                let entry = entry.map_err(read)?;
                // A link to a folder can lead back up: folders are walked as they are, not followed.
                if entry.file_type().map_err(read)?.is_symlink() && entry.path().is_dir() {
                    continue;
                }
                inside.push(entry.path());
            }
            inside.sort();
            for inner in inside.iter().filter(|f| f.file_name().is_some_and(|n| n != "manifest.json")) {
                self.walk(inner, depth)?;
            }
        } else if !self.seen.insert(path.canonicalize().unwrap_or_else(|_| path.to_owned())) {
            // A file or archive named twice (`import a.shp a.shp`, or a folder and a file in it)
            // is read once.
        } else if super::has_extension(path, &["zip"]) && !self.open_archives {
            self.files.push(path.to_owned());
        } else if super::has_extension(path, &["zip"]) {
            if depth >= self.limits.depth {
                return Err(refused(path, ArchiveProblem::TooDeep { max: self.limits.depth }));
            }
            let target = self.scratch.join(format!("archive-{}", self.archives));
            self.archives += 1;
            // Registered before anything is written, so that any error names the archive, not
            // the scratch folder.
            self.names.extracted(path, &target);
            self.extract(path, &target)?;
            self.walk(&target, depth + 1)?;
        } else if super::has_extension(path, &super::EXTENSIONS) && meta.is_file() {
            self.files.push(path.to_owned());
        }
        Ok(())
    }

    /// Writes the plain files and folders of the zip at `path` into `target`, or refuses it.
    fn extract(&mut self, path: &Path, target: &Path) -> Result<(), SourceError> {
        let mut file =
            std::fs::File::open(path).map_err(|source| SourceError::Read { file: path.to_owned(), source })?;
        let size = file.metadata().map_or(0, |m| m.len());
        let mut archive = zip::ZipArchive::new(
            file.try_clone().map_err(|source| SourceError::Read { file: path.to_owned(), source })?,
        )
        .map_err(|e| refused(path, ArchiveProblem::Unreadable(e.to_string())))?;
        // The zip crate keeps one entry per name: a second entry of the same name would silently
        // replace the first. The central directory itself says whether there is one.
        let listed = central_directory_names(&mut file, archive.central_directory_start(), self.limits.entries)
            .map_err(|e| refused(path, ArchiveProblem::Unreadable(e)))?;
        if listed.len() > self.limits.entries {
            return Err(refused(path, ArchiveProblem::TooManyEntries { max: self.limits.entries }));
        }
        let mut distinct = HashSet::new();
        if let Some(twice) = listed.iter().find(|n| !distinct.insert(n.as_slice())) {
            let entry = String::from_utf8_lossy(twice).into_owned();
            return Err(refused(path, ArchiveProblem::Duplicate { entry }));
        }
        if let Ok(stale) = std::fs::symlink_metadata(target) {
            let _ = if stale.is_dir() { std::fs::remove_dir_all(target) } else { std::fs::remove_file(target) };
        }
        let write_error = |entry: &str, e: std::io::Error| {
            refused(path, ArchiveProblem::Entry { entry: entry.to_owned(), reason: e.to_string() })
        };
        std::fs::create_dir_all(target).map_err(|e| write_error("", e))?;
        let mut archive_written = 0u64;
        let mut seen: HashSet<PathBuf> = HashSet::new();
        for i in 0..archive.len() {
            let mut entry =
                archive.by_index(i).map_err(|e| refused(path, ArchiveProblem::Unreadable(e.to_string())))?;
            let name = entry.name().to_owned();
            let Some(relative) = entry.enclosed_name() else {
                return Err(refused(path, ArchiveProblem::Escapes { entry: name }));
            };
            if entry.is_symlink() {
                return Err(refused(path, ArchiveProblem::Symlink { entry: name }));
            }
            // The file type bits, when the archive was made on Unix: only files and folders.
            if let Some(kind) = entry.unix_mode().map(|m| m & 0o170_000)
                && ![0, 0o100_000, 0o040_000].contains(&kind)
            {
                return Err(refused(path, ArchiveProblem::SpecialFile { entry: name }));
            }
            if entry.encrypted() {
                return Err(refused(path, ArchiveProblem::Encrypted { entry: name }));
            }
            let out = target.join(&relative);
            if entry.is_dir() {
                std::fs::create_dir_all(&out).map_err(|e| write_error(&name, e))?;
                continue;
            }
            // `a/./b` and `a/b` are one file.
            if !seen.insert(relative.clone()) {
                return Err(refused(path, ArchiveProblem::Duplicate { entry: name }));
            }
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent).map_err(|e| write_error(&name, e))?;
            }
            let mut written_to = std::fs::OpenOptions::new().write(true).create_new(true).open(&out).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    refused(path, ArchiveProblem::Duplicate { entry: name.clone() })
                } else {
                    write_error(&name, e)
                }
            })?;
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let n = entry.read(&mut buffer).map_err(|e| write_error(&name, e))?;
                if n == 0 {
                    break;
                }
                self.written += n as u64;
                archive_written += n as u64;
                if self.written > self.limits.expanded_bytes {
                    return Err(refused(
                        path,
                        ArchiveProblem::TooLarge { entry: name, max: self.limits.expanded_bytes },
                    ));
                }
                if archive_written > self.limits.ratio_from && archive_written > self.limits.ratio.saturating_mul(size)
                {
                    return Err(refused(
                        path,
                        ArchiveProblem::Ratio { entry: name, ratio: self.limits.ratio, written: archive_written, size },
                    ));
                }
                written_to.write_all(&buffer[..n]).map_err(|e| write_error(&name, e))?;
            }
        }
        Ok(())
    }
}

fn refused(archive: &Path, problem: ArchiveProblem) -> SourceError {
    SourceError::Archive { archive: archive.to_owned(), problem }
}

/// The raw names of the central directory's entries, read from `start` (at most `limit` + 1).
fn central_directory_names(file: &mut std::fs::File, start: u64, limit: usize) -> Result<Vec<Vec<u8>>, String> {
    const SIGNATURE: u32 = 0x0201_4b50;
    file.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
    let mut reader = std::io::BufReader::new(file);
    let mut names = Vec::new();
    let mut header = [0u8; 46];
    while names.len() <= limit {
        if reader.read_exact(&mut header).is_err() {
            break;
        }
        if u32::from_le_bytes([header[0], header[1], header[2], header[3]]) != SIGNATURE {
            break;
        }
        let field = |at: usize| u64::from(u16::from_le_bytes([header[at], header[at + 1]]));
        let mut name = vec![0u8; usize::from(u16::from_le_bytes([header[28], header[29]]))];
        reader.read_exact(&mut name).map_err(|e| format!("central directory: {e}"))?;
        let skip = i64::try_from(field(30) + field(32)).unwrap_or(i64::MAX);
        reader.seek_relative(skip).map_err(|e| format!("central directory: {e}"))?;
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use zip::write::SimpleFileOptions;

    /// One entry of a test archive.
    #[derive(Debug, Clone)]
    enum Entry {
        File(String, Vec<u8>),
        Folder(String),
        Link(String, String),
        Fifo(String),
    }

    /// The archive of `entries`; names the zip writer refuses (it refuses a repeated name, so
    /// duplicates are made by [`renamed`]) are left out.
    fn zip(entries: &[Entry]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = SimpleFileOptions::default();
        for entry in entries {
            let _ = match entry {
                Entry::File(name, data) => {
                    writer.start_file(name.as_str(), options).map(|()| writer.write_all(data).expect("write"))
                }
                Entry::Folder(name) => writer.add_directory(name.as_str(), options),
                Entry::Link(name, target) => writer.add_symlink(name.as_str(), target.as_str(), options),
                // Written as a file, made a pipe below: the writer keeps only permission bits.
                Entry::Fifo(name) => writer.start_file(name.as_str(), options.unix_permissions(0o644)),
            };
        }
        let mut bytes = writer.finish().expect("finish").into_inner();
        let pipes: Vec<&str> =
            entries.iter().filter_map(|e| if let Entry::Fifo(n) = e { Some(n.as_str()) } else { None }).collect();
        let mut at = 0;
        while let Some(i) = bytes[at..].windows(4).position(|w| w == [0x50, 0x4b, 0x01, 0x02]) {
            let header = at + i;
            let name_len = usize::from(u16::from_le_bytes([bytes[header + 28], bytes[header + 29]]));
            let name = bytes.get(header + 46..header + 46 + name_len).map(|n| String::from_utf8_lossy(n).into_owned());
            if name.is_some_and(|n| pipes.contains(&n.as_str())) {
                bytes[header + 5] = 3; // made on Unix
                bytes[header + 38..header + 42].copy_from_slice(&(0o010_644u32 << 16).to_le_bytes());
            }
            at = header + 4;
        }
        bytes
    }

    /// `bytes` with every `from` replaced by `to` (of the same length): the same name twice.
    fn renamed(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
        assert_eq!(from.len(), to.len());
        let mut out = bytes.to_vec();
        let mut at = 0;
        while let Some(i) = out[at..].windows(from.len()).position(|w| w == from.as_bytes()) {
            out[at + i..at + i + to.len()].copy_from_slice(to.as_bytes());
            at += i + to.len();
        }
        out
    }

    /// A fresh folder (removed when dropped) with `upload.zip` holding `bytes`, and a scratch
    /// folder beside it.
    fn upload(bytes: &[u8]) -> (crate::TestDir, PathBuf, PathBuf) {
        let dir = crate::TestDir::new("archive-test");
        let path = dir.0.join("upload.zip");
        std::fs::write(&path, bytes).expect("write");
        let scratch = dir.0.join("scratch");
        (dir, path, scratch)
    }

    fn run(entries: &[Entry], limits: ArchiveLimits) -> Result<Vec<String>, String> {
        run_bytes(&zip(entries), limits)
    }

    fn run_bytes(bytes: &[u8], limits: ArchiveLimits) -> Result<Vec<String>, String> {
        let (_dir, path, scratch) = upload(bytes);
        let names = SourceNames::shown_as(vec![(path.clone(), "upload.zip".into())]);
        expand_with(std::slice::from_ref(&path), &scratch, &names, limits)
            .map(|files| files.iter().map(|f| names.shown(f)).collect())
            .map_err(|e| names.error(e).to_string())
    }

    fn file(name: &str) -> Entry {
        Entry::File(name.to_owned(), b"{}".to_vec())
    }

    #[test]
    fn a_zip_in_a_zip_is_read_once_and_a_third_level_refused() {
        let inner = zip(&[file("a.geojson")]);
        let middle = zip(&[Entry::File("inner.zip".into(), inner), file("b.geojson")]);
        let files = run(&[Entry::File("middle.zip".into(), middle.clone())], ArchiveLimits::default());
        let e = files.expect_err("three levels");
        assert!(e.contains("upload.zip/middle.zip/inner.zip") && e.contains("inside an archive inside"), "{e}");
        let files =
            run(&[Entry::File("middle.zip".into(), middle.clone())], ArchiveLimits { depth: 3, ..Default::default() });
        assert_eq!(
            files.expect("three levels allowed"),
            ["upload.zip/middle.zip/b.geojson", "upload.zip/middle.zip/inner.zip/a.geojson"]
        );
        let files = run(
            &[Entry::File("inner.zip".into(), zip(&[file("a.geojson")])), file("c.geojson")],
            ArchiveLimits::default(),
        );
        assert_eq!(files.expect("two levels"), ["upload.zip/c.geojson", "upload.zip/inner.zip/a.geojson"]);
    }

    #[test]
    fn links_special_files_escapes_and_duplicates_refuse_the_archive_naming_the_entry() {
        let cases: Vec<(Vec<Entry>, &str)> = vec![
            (
                vec![file("a.geojson"), Entry::Link("b.geojson".into(), "/etc/passwd".into())],
                "\"b.geojson\" is a symbolic link",
            ),
            (vec![Entry::Fifo("p.geojson".into())], "\"p.geojson\" is a special file"),
            (vec![file("../x.geojson")], "\"../x.geojson\" would be written outside"),
            (vec![file("/abs.geojson")], "\"/abs.geojson\" would be written outside"),
            (vec![file("d/a.geojson"), file("d/./a.geojson")], "names the same file as an earlier entry"),
        ];
        for (entries, expected) in cases {
            let e = run(&entries, ArchiveLimits::default()).expect_err(expected);
            assert!(e.starts_with("cannot expand upload.zip: ") && e.contains(expected), "{e}");
        }
        // The zip crate keeps the last entry of a name: the second would replace the first unseen.
        let twice = renamed(&zip(&[file("a.geojson"), file("b.geojson")]), "b.geojson", "a.geojson");
        let e = run_bytes(&twice, ArchiveLimits::default()).expect_err("a name twice");
        assert!(e.contains("\"a.geojson\" names the same file as an earlier entry"), "{e}");
    }

    #[test]
    fn a_file_named_twice_is_read_once() {
        let (_dir, path, scratch) = upload(&zip(&[file("a.geojson")]));
        let folder = path.parent().expect("folder").to_owned();
        let loose = folder.join("b.geojson");
        std::fs::write(&loose, "{}").expect("write");
        let paths = [loose.clone(), folder.clone(), loose.clone(), path.clone()];
        let names = SourceNames::as_given(&paths);
        let files = expand(&paths, &scratch, &names).expect("expanded");
        let shown: Vec<String> = files.iter().map(|f| names.shown(f)).collect();
        let name = |p: &Path| p.display().to_string();
        assert_eq!(shown, [name(&loose), format!("{}/upload.zip/a.geojson", name(&folder))]);
    }

    #[test]
    fn expanded_bytes_are_limited_in_total_and_against_the_archive() {
        let big = Entry::File("zeros.geojson".into(), vec![0; 1 << 20]);
        let limits = ArchiveLimits { expanded_bytes: 1 << 19, ..Default::default() };
        assert!(run(std::slice::from_ref(&big), limits).expect_err("too large").contains("past 524288 bytes"));
        let limits = ArchiveLimits { ratio: 10, ratio_from: 1 << 16, ..Default::default() };
        assert!(run(std::slice::from_ref(&big), limits).expect_err("bomb").contains("a zip bomb"));
        assert!(run(&[big], ArchiveLimits::default()).is_ok());
    }

    /// A name from a small alphabet, so that duplicates, folders and `..` come up often.
    fn name() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::collection::vec(
            proptest::sample::select(vec!["a", "b", "..", ".", "/", "x.geojson", "y.shp", "z.zip"]),
            1..5,
        )
        .prop_map(|parts| parts.concat())
    }

    fn entry() -> impl proptest::strategy::Strategy<Value = Entry> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (name(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(n, d)| Entry::File(n, d)),
            1 => name().prop_map(Entry::Folder),
            1 => (name(), name()).prop_map(|(n, t)| Entry::Link(n, t)),
            1 => name().prop_map(Entry::Fifo),
        ]
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Any archive: refused with a reason naming it, or expanded inside its folder with no link
        /// on disk, every file listed once.
        #[test]
        fn any_archive_is_expanded_inside_its_folder_or_refused(entries in proptest::collection::vec(entry(), 0..8)) {
            let (_dir, path, scratch) = upload(&zip(&entries));
            let names = SourceNames::shown_as(vec![(path.clone(), "upload.zip".into())]);
            match expand(std::slice::from_ref(&path), &scratch, &names) {
                Err(e) => {
                    let e = names.error(e).to_string();
                    proptest::prop_assert!(e.contains("upload.zip"), "{}", e);
                    proptest::prop_assert!(!e.contains(&*scratch.to_string_lossy()), "{}", e);
                }
                Ok(files) => {
                    let mut seen = HashSet::new();
                    for f in &files {
                        proptest::prop_assert!(f.starts_with(&scratch), "{:?}", f);
                        proptest::prop_assert!(seen.insert(f.canonicalize().expect("exists")), "{:?} twice", f);
                    }
                    for written in walk(&scratch) {
                        let meta = std::fs::symlink_metadata(&written).expect("meta");
                        proptest::prop_assert!(meta.is_dir() || meta.is_file(), "{:?}", written);
                    }
                }
            }
        }
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&path));
            }
            out.push(path);
        }
        out
    }
}
