//! Rewrites the text fields of a `.dbf` in a legacy Vietnamese encoding, the way old ViLIS and
//! MapInfo workflows left them (GDAL can only write UTF-8 or recode through iconv).

use std::path::Path;

use anyhow::Context;
use landdb_text::Encoding;

/// Re-encodes every character field of every record from UTF-8 to `encoding`, padded with spaces.
pub fn recode_text_fields(path: &Path, encoding: Encoding) -> anyhow::Result<()> {
    let mut bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    anyhow::ensure!(bytes.len() >= 32, "{} is too short to be a DBF", path.display());
    let records = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let record_len = usize::from(u16::from_le_bytes([bytes[10], bytes[11]]));
    // Field descriptors: 32 bytes each from offset 32 until the 0x0D terminator.
    let mut text_fields = Vec::new();
    let mut offset = 1; // the deletion flag
    let mut at = 32;
    while at + 32 <= header_len && bytes[at] != 0x0D {
        let kind = bytes[at + 11];
        let len = usize::from(bytes[at + 16]);
        if kind == b'C' {
            text_fields.push((offset, len));
        }
        offset += len;
        at += 32;
    }
    for record in 0..records {
        let start = header_len + record * record_len;
        for &(field_offset, len) in &text_fields {
            let slot = &mut bytes[start + field_offset..start + field_offset + len];
            let text = String::from_utf8_lossy(slot).trim_end_matches([' ', '\0']).to_owned();
            let encoded =
                landdb_text::encode(&text, encoding).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            anyhow::ensure!(encoded.len() <= len, "{}: {text:?} does not fit in {len} bytes", path.display());
            slot.fill(b' ');
            slot[..encoded.len()].copy_from_slice(&encoded);
        }
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
