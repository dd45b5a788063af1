//! A view on disk, for fast restarts: the compact columns of its snapshots as they are in memory,
//! the versions retired since the base was built, and the feed position. Reading it needs no
//! re-encoding, only the tree and the indexes rebuilt; following the feed from its position then
//! gives the same engine as loading from the store. Little-endian, versioned by its first bytes,
//! with a checksum at the end: a file that is not one, or is damaged, says so.

use std::collections::HashSet;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use landdb_model::{CommuneCode, FeedPosition, LandUseCode, VersionId};

use crate::codec::Texts;
use crate::snapshot::Snapshot;
use crate::view::View;

const MAGIC: &[u8; 12] = b"landdb-snap2";

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read or write the snapshot {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a landdb snapshot (or one of another version): {reason}")]
    Format { path: String, reason: String },
}

/// A running checksum of everything written or read (FNV-1a over 8-byte words).
#[derive(Debug)]
struct Checksum(u64);

impl Checksum {
    fn new() -> Self {
        Checksum(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0 ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        for b in chunks.remainder() {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

struct Writer<'p, W: Write> {
    out: W,
    sum: Checksum,
    /// Bytes written so far, told to `progress` as they go (a national snapshot is gigabytes).
    written: u64,
    progress: &'p dyn Fn(u64),
}

impl<W: Write> Writer<'_, W> {
    fn bytes(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.sum.add(b);
        for chunk in b.chunks(4 << 20) {
            self.out.write_all(chunk)?;
            self.written += chunk.len() as u64;
            (self.progress)(self.written);
        }
        Ok(())
    }

    fn u64(&mut self, v: u64) -> std::io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    fn block(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.u64(b.len() as u64)?;
        self.bytes(b)
    }

    fn words<T: Copy, const N: usize>(&mut self, values: &[T], to: impl Fn(T) -> [u8; N]) -> std::io::Result<()> {
        self.u64(values.len() as u64)?;
        let mut buf = Vec::with_capacity(values.len().min(1 << 16) * N);
        for chunk in values.chunks(1 << 16) {
            buf.clear();
            chunk.iter().for_each(|v| buf.extend_from_slice(&to(*v)));
            self.bytes(&buf)?;
        }
        Ok(())
    }

    fn texts(&mut self, texts: impl ExactSizeIterator<Item = impl AsRef<str>>) -> std::io::Result<()> {
        self.u64(texts.len() as u64)?;
        for t in texts {
            self.block(t.as_ref().as_bytes())?;
        }
        Ok(())
    }

    fn snapshot(&mut self, s: &Snapshot) -> std::io::Result<()> {
        self.u64(s.position.0 as u64)?;
        self.words(&s.versions, i64::to_le_bytes)?;
        self.words(&s.starts, u64::to_le_bytes)?;
        self.block(&s.records)?;
        let (bytes, ends) = s.texts.parts();
        self.block(bytes.as_bytes())?;
        self.words(ends, u32::to_le_bytes)?;
        self.texts(s.communes.iter().map(CommuneCode::as_str))?;
        self.texts(s.land_uses.iter().map(LandUseCode::as_str))
    }
}

/// Writes `view` to `path` (through a temporary file, renamed when complete).
pub fn write(path: &Path, view: &View) -> Result<(), FileError> {
    write_reporting(path, view, &|_| {}).map(|_| ())
}

/// [`write`], telling `progress` the bytes written as they go; returns the file's size.
pub fn write_reporting(path: &Path, view: &View, progress: &dyn Fn(u64)) -> Result<u64, FileError> {
    let io = |source| FileError::Io { path: path.display().to_string(), source };
    let partial = path.with_extension("partial");
    let out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&partial).map_err(io)?);
    let mut w = Writer { out, sum: Checksum::new(), written: 0, progress };
    (|| -> std::io::Result<()> {
        w.bytes(MAGIC)?;
        w.snapshot(&view.base)?;
        w.snapshot(&view.recent)?;
        let retired: Vec<i64> = view.retired.iter().map(|v| v.0).collect();
        w.words(&retired, i64::to_le_bytes)?;
        let sum = w.sum.0;
        w.out.write_all(&sum.to_le_bytes())?;
        w.out.flush()
    })()
    .map_err(io)?;
    let size = w.written + 8;
    (w.progress)(size);
    drop(w);
    std::fs::rename(&partial, path).map_err(io)?;
    Ok(size)
}

/// Reads a view written by [`write`].
pub fn read(path: &Path) -> Result<View, FileError> {
    let io = |source| FileError::Io { path: path.display().to_string(), source };
    let bad = |reason: String| FileError::Format { path: path.display().to_string(), reason };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut r = Reader { inner: BufReader::with_capacity(1 << 20, file), sum: Checksum::new(), left: size };
    let mut magic = [0u8; 12];
    r.read(&mut magic).map_err(|e| r.failed(e, &bad, &io))?;
    if &magic != MAGIC {
        return Err(bad(format!("it does not begin with {}", String::from_utf8_lossy(MAGIC))));
    }
    let parts = (|| -> std::io::Result<_> {
        let base = r.snapshot()?;
        let recent = r.snapshot()?;
        let retired = r.words::<8>()?;
        Ok((base, recent, retired))
    })();
    let (base, recent, retired) = parts.map_err(|e| r.failed(e, &bad, &io))?;
    let expected = r.sum.0;
    let mut stored = [0u8; 8];
    r.inner.read_exact(&mut stored).map_err(|e| bad(format!("it ends before its checksum ({e})")))?;
    if u64::from_le_bytes(stored) != expected {
        return Err(bad("its checksum does not match: the file is damaged".into()));
    }
    let snapshot = |p: SnapshotParts| -> Result<Snapshot, FileError> {
        if p.starts.iter().any(|s| *s >= p.records.len() as u64) || p.starts.len() != p.versions.len() {
            return Err(bad("a parcel lies outside the record bytes".into()));
        }
        let text = String::from_utf8(p.text_bytes).map_err(|e| bad(format!("texts: {e}")))?;
        let texts = Texts::from_parts(text, p.text_ends).ok_or_else(|| bad("the text table is inconsistent".into()))?;
        let communes = p
            .communes
            .iter()
            .map(|c| CommuneCode::parse(c).map_err(|e| bad(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let land_uses = p
            .land_uses
            .iter()
            .map(|c| LandUseCode::parse(c).map_err(|e| bad(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Snapshot::from_columns(p.versions, p.starts, p.records, texts, communes, land_uses, p.position))
    };
    let retired: HashSet<VersionId> = retired.into_iter().map(|w| VersionId(i64::from_le_bytes(w))).collect();
    Ok(View::from_parts(snapshot(base)?, snapshot(recent)?, retired))
}

struct SnapshotParts {
    position: FeedPosition,
    versions: Vec<i64>,
    starts: Vec<u64>,
    records: Vec<u8>,
    text_bytes: Vec<u8>,
    text_ends: Vec<u32>,
    communes: Vec<String>,
    land_uses: Vec<String>,
}

struct Reader<R: Read> {
    inner: R,
    sum: Checksum,
    /// Bytes left in the file: no length read from it can ask for more.
    left: u64,
}

impl<R: Read> Reader<R> {
    /// The error for a failed read: a file that ends early is malformed, not unreadable.
    fn failed(
        &self,
        e: std::io::Error,
        bad: &dyn Fn(String) -> FileError,
        io: &dyn Fn(std::io::Error) -> FileError,
    ) -> FileError {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData => bad(e.to_string()),
            _ => io(e),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        if buf.len() as u64 > self.left {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "it is shorter than it says"));
        }
        self.inner.read_exact(buf)?;
        self.left -= buf.len() as u64;
        self.sum.add(buf);
        Ok(())
    }

    fn u64(&mut self) -> std::io::Result<u64> {
        let mut b = [0u8; 8];
        self.read(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// A length, checked against what is left of the file.
    fn len(&mut self, unit: u64) -> std::io::Result<usize> {
        let n = self.u64()?;
        if n.saturating_mul(unit) > self.left {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "a length runs past the end"));
        }
        Ok(n as usize)
    }

    fn block(&mut self) -> std::io::Result<Vec<u8>> {
        let n = self.len(1)?;
        let mut b = vec![0u8; n];
        self.read(&mut b)?;
        Ok(b)
    }

    fn words<const N: usize>(&mut self) -> std::io::Result<Vec<[u8; N]>> {
        let n = self.len(N as u64)?;
        let bytes = {
            let mut b = vec![0u8; n * N];
            self.read(&mut b)?;
            b
        };
        Ok(bytes
            .chunks_exact(N)
            .map(|c| {
                let mut w = [0u8; N];
                w.copy_from_slice(c);
                w
            })
            .collect())
    }

    fn texts(&mut self) -> std::io::Result<Vec<String>> {
        let n = self.len(8)?;
        (0..n)
            .map(|_| {
                String::from_utf8(self.block()?).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })
            .collect()
    }

    fn snapshot(&mut self) -> std::io::Result<SnapshotParts> {
        Ok(SnapshotParts {
            position: FeedPosition(self.u64()? as i64),
            versions: self.words::<8>()?.into_iter().map(i64::from_le_bytes).collect(),
            starts: self.words::<8>()?.into_iter().map(u64::from_le_bytes).collect(),
            records: self.block()?,
            text_bytes: self.block()?,
            text_ends: self.words::<4>()?.into_iter().map(u32::from_le_bytes).collect(),
            communes: self.texts()?,
            land_uses: self.texts()?,
        })
    }
}
