//! A dBASE reader that hands back raw bytes: Shapefile attributes are decoded by landdb itself
//! (GDAL 3.6.2 truncates strings when it recodes TCVN3 or CP1258), after detecting the encoding
//! from the bytes when the `.cpg` does not say or lies.

use std::path::Path;

/// One column of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbfField {
    pub name: String,
    /// `C` text, `N`/`F` number, `D` date, `L` logical.
    pub kind: u8,
    offset: usize,
    len: usize,
}

/// A whole `.dbf` in memory (attribute tables are small next to their geometry).
#[derive(Debug)]
pub struct Dbf {
    pub fields: Vec<DbfField>,
    bytes: Vec<u8>,
    header_len: usize,
    record_len: usize,
    records: usize,
}

impl Dbf {
    pub fn open(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < 33 {
            return Err("too short to be a dBASE file".into());
        }
        let records = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        let record_len = usize::from(u16::from_le_bytes([bytes[10], bytes[11]]));
        let mut fields = Vec::new();
        let mut offset = 1; // the deletion flag
        let mut at = 32;
        while at + 32 <= header_len.min(bytes.len()) && bytes[at] != 0x0D {
            let raw_name = &bytes[at..at + 11];
            let end = raw_name.iter().position(|b| *b == 0).unwrap_or(11);
            // Field names are ASCII in practice; anything else is shown, not trusted.
            let name = String::from_utf8_lossy(&raw_name[..end]).trim().to_owned();
            let len = usize::from(bytes[at + 16]);
            fields.push(DbfField { name, kind: bytes[at + 11], offset, len });
            offset += len;
            at += 32;
        }
        // Every field must lie inside its record, or reading the last record would run off the end.
        if offset > record_len {
            return Err(format!("its fields take {offset} bytes but a record has {record_len}"));
        }
        if header_len + records * record_len > bytes.len() {
            return Err(format!("declares {records} records but is truncated"));
        }
        Ok(Self { fields, bytes, header_len, record_len, records })
    }

    pub fn len(&self) -> usize {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The raw bytes of field `field` of record `record` (0-based), trailing blanks removed.
    pub fn raw(&self, record: usize, field: usize) -> &[u8] {
        let f = &self.fields[field];
        let start = self.header_len + record * self.record_len + f.offset;
        let slot = &self.bytes[start..start + f.len];
        let end = slot.iter().rposition(|b| *b != b' ' && *b != 0).map_or(0, |i| i + 1);
        let begin = if f.kind == b'C' { 0 } else { slot.iter().position(|b| *b != b' ').unwrap_or(end) };
        &slot[begin.min(end)..end]
    }

    /// Every non-empty text value with a byte above 0x7F: what encoding detection looks at.
    pub fn non_ascii_text(&self, limit: usize) -> Vec<&[u8]> {
        let text: Vec<usize> = (0..self.fields.len()).filter(|i| self.fields[*i].kind == b'C').collect();
        let mut out = Vec::new();
        'records: for r in 0..self.records {
            for &f in &text {
                let raw = self.raw(r, f);
                if raw.iter().any(|b| *b > 0x7F) {
                    out.push(raw);
                    if out.len() >= limit {
                        break 'records;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header of `fields` (name, kind, length), `record_len` declared, and `records` blank records.
    fn dbf(fields: &[(&str, u8, u8)], record_len: u16, records: u32) -> Vec<u8> {
        let header_len = 32 + 32 * fields.len() + 1;
        let mut b = vec![0u8; 32];
        b[4..8].copy_from_slice(&records.to_le_bytes());
        b[8..10].copy_from_slice(&u16::try_from(header_len).expect("small").to_le_bytes());
        b[10..12].copy_from_slice(&record_len.to_le_bytes());
        for (name, kind, len) in fields {
            let mut f = vec![0u8; 32];
            f[..name.len()].copy_from_slice(name.as_bytes());
            f[11] = *kind;
            f[16] = *len;
            b.extend(f);
        }
        b.push(0x0D);
        b.extend(std::iter::repeat_n(b' ', usize::from(record_len) * records as usize));
        b
    }

    #[test]
    fn fields_longer_than_the_record_are_refused_not_read_past_the_end() {
        let e = Dbf::parse(dbf(&[("MaXa", b'C', 200)], 10, 3)).expect_err("refused");
        assert!(e.contains("a record has 10"), "{e}");
        let ok = Dbf::parse(dbf(&[("MaXa", b'C', 9)], 10, 3)).expect("fits");
        assert_eq!(ok.raw(2, 0), b"");
    }

    proptest::proptest! {
        /// Any bytes: a table or a reason, and every field of every record readable.
        #[test]
        fn any_bytes_parse_or_are_refused(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            if let Ok(dbf) = Dbf::parse(bytes) {
                for r in 0..dbf.len().min(50) {
                    for f in 0..dbf.fields.len() {
                        let _ = dbf.raw(r, f);
                    }
                }
            }
        }
    }
}
