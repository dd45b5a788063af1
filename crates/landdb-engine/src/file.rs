//! A snapshot on disk, for fast restarts: every current parcel with its boundary, and the feed
//! position it reflects. Reading it and following the feed from that position gives the same
//! engine as loading from the store, without the database round trips. Little-endian, versioned
//! by its first bytes; a file that is not one says so.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use geo::{Coord, LineString, MultiPolygon, Polygon};
use landdb_model::{CommuneCode, FeedPosition, LandUseCode, NationalParcelId, ParcelKey, VersionId};

use crate::ParcelRecord;

const MAGIC: &[u8; 12] = b"landdb-snap1";

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read or write the snapshot {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a landdb snapshot (or one of another version): {reason}")]
    Format { path: String, reason: String },
}

/// Writes `parcels` at `position` to `path` (through a temporary file, renamed when complete).
pub fn write<'a>(
    path: &Path,
    position: FeedPosition,
    count: usize,
    parcels: impl Iterator<Item = ParcelRecord> + 'a,
) -> Result<(), FileError> {
    let io = |source| FileError::Io { path: path.display().to_string(), source };
    let partial = path.with_extension("partial");
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&partial).map_err(io)?);
    let mut w = |bytes: &[u8]| out.write_all(bytes);
    let text = |w: &mut dyn FnMut(&[u8]) -> std::io::Result<()>, s: &str| -> std::io::Result<()> {
        w(&(s.len() as u32).to_le_bytes())?;
        w(s.as_bytes())
    };
    (|| -> std::io::Result<()> {
        w(MAGIC)?;
        w(&position.0.to_le_bytes())?;
        w(&(count as u64).to_le_bytes())?;
        for p in parcels {
            w(&p.version.0.to_le_bytes())?;
            text(&mut w, p.key.commune.as_str())?;
            text(&mut w, &p.key.sheet)?;
            text(&mut w, &p.key.number)?;
            text(&mut w, p.national_id.as_str())?;
            let codes: Vec<&str> = p.land_use.iter().map(|c| c.as_str()).collect();
            text(&mut w, &codes.join("+"))?;
            w(&p.area_m2.to_le_bytes())?;
            match &p.address {
                Some(a) => {
                    w(&[1])?;
                    text(&mut w, a)?;
                }
                None => w(&[0])?,
            }
            w(&(p.geometry.0.len() as u32).to_le_bytes())?;
            for polygon in &p.geometry.0 {
                w(&(1 + polygon.interiors().len() as u32).to_le_bytes())?;
                for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
                    w(&(ring.0.len() as u32).to_le_bytes())?;
                    for c in &ring.0 {
                        w(&c.x.to_le_bytes())?;
                        w(&c.y.to_le_bytes())?;
                    }
                }
            }
        }
        Ok(())
    })()
    .map_err(io)?;
    out.flush().map_err(io)?;
    drop(out);
    std::fs::rename(&partial, path).map_err(io)
}

/// Reads a snapshot file: the feed position and every parcel.
pub fn read(path: &Path) -> Result<(FeedPosition, Vec<ParcelRecord>), FileError> {
    let io = |source| FileError::Io { path: path.display().to_string(), source };
    let bad = |reason: String| FileError::Format { path: path.display().to_string(), reason };
    let mut r = Reader { inner: BufReader::with_capacity(1 << 20, std::fs::File::open(path).map_err(io)?) };
    let mut magic = [0u8; 12];
    r.inner.read_exact(&mut magic).map_err(io)?;
    if &magic != MAGIC {
        return Err(bad("it does not begin with landdb-snap1".into()));
    }
    let position = FeedPosition(r.i64().map_err(io)?);
    let count = usize::try_from(r.u64().map_err(io)?).map_err(|e| bad(e.to_string()))?;
    let mut parcels = Vec::with_capacity(count.min(100_000_000));
    for _ in 0..count {
        let version = VersionId(r.i64().map_err(io)?);
        let commune = CommuneCode::parse(&r.text().map_err(io)?).map_err(|e| bad(e.to_string()))?;
        let sheet = r.text().map_err(io)?;
        let number = r.text().map_err(io)?;
        let national_id = NationalParcelId::parse(&r.text().map_err(io)?).map_err(|e| bad(e.to_string()))?;
        let codes = r.text().map_err(io)?;
        let land_use = if codes.is_empty() {
            Vec::new()
        } else {
            LandUseCode::parse_list(&codes).map_err(|e| bad(e.to_string()))?
        };
        let area_m2 = f64::from_bits(r.u64().map_err(io)?);
        let address = if r.u8().map_err(io)? == 1 { Some(r.text().map_err(io)?) } else { None };
        let mut polygons = Vec::new();
        for _ in 0..r.u32().map_err(io)? {
            let mut rings = Vec::new();
            for _ in 0..r.u32().map_err(io)? {
                let n = r.u32().map_err(io)? as usize;
                let mut coords = Vec::with_capacity(n);
                for _ in 0..n {
                    coords.push(Coord {
                        x: f64::from_bits(r.u64().map_err(io)?),
                        y: f64::from_bits(r.u64().map_err(io)?),
                    });
                }
                rings.push(LineString(coords));
            }
            let mut rings = rings.into_iter();
            if let Some(exterior) = rings.next() {
                polygons.push(Polygon::new(exterior, rings.collect()));
            }
        }
        parcels.push(ParcelRecord {
            version,
            key: ParcelKey { commune, sheet, number },
            national_id,
            land_use,
            area_m2,
            address,
            geometry: MultiPolygon(polygons),
        });
    }
    Ok((position, parcels))
}

struct Reader<R: Read> {
    inner: R,
}

impl<R: Read> Reader<R> {
    fn bytes<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b)?;
        Ok(b)
    }
    fn u8(&mut self) -> std::io::Result<u8> {
        Ok(self.bytes::<1>()?[0])
    }
    fn u32(&mut self) -> std::io::Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> std::io::Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn i64(&mut self) -> std::io::Result<i64> {
        Ok(i64::from_le_bytes(self.bytes()?))
    }
    fn text(&mut self) -> std::io::Result<String> {
        let n = self.u32()? as usize;
        let mut b = vec![0u8; n];
        self.inner.read_exact(&mut b)?;
        String::from_utf8(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}
