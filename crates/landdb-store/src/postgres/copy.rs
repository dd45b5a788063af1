//! `COPY … FROM STDIN` encodings: parcel versions and right holders as text (the bulk path),
//! audit entries in the binary format (the path every request takes).

use std::fmt::Write;

use chrono::{DateTime, Utc};
use landdb_model::{BatchId, Parcel};

use crate::geometry::{SRID_WGS84, to_ewkb};

pub(super) const PARCEL_VERSION: &str = "COPY parcel_version (id, national_id, commune_code, sheet, parcel_no, \
    commune_code_received, province_code, land_use, legal_area_m2, measured_area_m2, geometry_area_m2, address, \
    certificate_no, source_crs, extra, geom, valid_from, batch_id, fingerprint) FROM STDIN";

pub(super) const RIGHT_HOLDER: &str =
    "COPY right_holder (version_id, ordinal, name, citizen_id, birth_year, address) FROM STDIN";

// The audit log is written by every request, so its rows go in COPY's binary format: no text
// to escape here, and nothing for the server to parse (timestamps above all), about a fifth less
// of its CPU for each entry.
pub(super) const AUDIT_ENTRY: &str = "COPY audit_entry (seq, at, agency, key_id, method, endpoint, params, purpose, \
    status, parcels, personal, prev_hash, hash) FROM STDIN (FORMAT binary)";

pub(super) const AUDIT_DISCLOSURE: &str = "COPY audit_disclosure (version_id, seq) FROM STDIN (FORMAT binary)";

/// Audit entries chained after `seq` and `prev` (the head), as the rows of both tables (COPY
/// binary; the disclosures are empty when no entry disclosed personal data); the new head comes
/// back with them.
pub(super) fn encode_audit(
    events: &[landdb_access::AuditEvent],
    mut seq: i64,
    mut prev: String,
) -> (Vec<u8>, Vec<u8>, i64, String) {
    let mut entries = Binary::new(events.len() * 300);
    let mut disclosures = Binary::new(0);
    for e in events {
        seq += 1;
        let hash = landdb_access::audit::entry_hash(seq, e, &prev);
        entries.row(13);
        entries.int8(seq);
        entries.timestamptz(e.at);
        for field in [&e.agency, &e.key_id, &e.method, &e.endpoint, &e.params, &e.purpose] {
            entries.text(field);
        }
        entries.int4(i32::from(e.status));
        entries.int8(i64::try_from(e.parcels).unwrap_or(i64::MAX));
        entries.text(&crate::access::personal_text(e));
        entries.text(&prev);
        entries.text(&hash);
        // Each version once (the pair is the table's key; a repeat would fail the batch).
        for v in e.personal.iter().collect::<std::collections::BTreeSet<_>>() {
            disclosures.row(2);
            disclosures.int8(*v);
            disclosures.int8(seq);
        }
        prev = hash;
    }
    let disclosures = if disclosures.rows == 0 { Vec::new() } else { disclosures.finish() };
    (entries.finish(), disclosures, seq, prev)
}

/// Rows in COPY's binary format: a signature and two zero words, then each row as its number of
/// fields and each field as its length and bytes (big-endian numbers), then -1.
struct Binary {
    out: Vec<u8>,
    rows: usize,
}

impl Binary {
    fn new(capacity: usize) -> Binary {
        let mut out = Vec::with_capacity(capacity + 21);
        out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        out.extend_from_slice(&0i32.to_be_bytes()); // flags
        out.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Binary { out, rows: 0 }
    }

    fn row(&mut self, fields: i16) {
        self.rows += 1;
        self.out.extend_from_slice(&fields.to_be_bytes());
    }

    fn int8(&mut self, v: i64) {
        self.out.extend_from_slice(&8i32.to_be_bytes());
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    fn int4(&mut self, v: i32) {
        self.out.extend_from_slice(&4i32.to_be_bytes());
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    /// Microseconds since 2000-01-01 UTC, PostgreSQL's epoch.
    fn timestamptz(&mut self, at: DateTime<Utc>) {
        const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;
        self.int8(at.timestamp_micros() - POSTGRES_EPOCH_MICROS);
    }

    fn text(&mut self, v: &str) {
        // A field is far below 2 GiB: request lines are capped by the HTTP server.
        self.out.extend_from_slice(&i32::try_from(v.len()).unwrap_or(i32::MAX).to_be_bytes());
        self.out.extend_from_slice(v.as_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&(-1i16).to_be_bytes());
        self.out
    }
}

/// Appends a text field with COPY's escapes.
fn text(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ => out.push(c),
        }
    }
}

fn opt_text(out: &mut String, value: Option<&str>) {
    match value {
        Some(v) => text(out, v),
        None => out.push_str("\\N"),
    }
}

fn opt_num(out: &mut String, value: Option<impl std::fmt::Display>) {
    match value {
        // Display of f64 is the shortest string that reads back to the same value.
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.push_str("\\N"),
    }
}

fn hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

/// Encodes the rows of both tables for parcels that get the version IDs `ids`.
pub(super) fn encode(parcels: &[Parcel], ids: &[i64], valid_from: DateTime<Utc>, batch: BatchId) -> (String, String) {
    let valid_from = valid_from.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut versions = String::with_capacity(parcels.len() * 1024);
    let mut holders = String::new();
    for (parcel, id) in parcels.iter().zip(ids) {
        let out = &mut versions;
        let _ = write!(out, "{id}\t");
        for value in [
            parcel.national_id.as_str(),
            parcel.key.commune.as_str(),
            &parcel.key.sheet,
            &parcel.key.number,
            &parcel.commune_code_received,
            parcel.province.as_str(),
        ] {
            text(out, value);
            out.push('\t');
        }
        // Land-use codes are validated upper-case letters: no array quoting needed.
        out.push('{');
        out.push_str(&parcel.land_use.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","));
        out.push_str("}\t");
        opt_num(out, parcel.legal_area_m2);
        out.push('\t');
        opt_num(out, parcel.measured_area_m2);
        out.push('\t');
        opt_num(out, Some(parcel.geometry_area_m2));
        out.push('\t');
        opt_text(out, parcel.address.as_deref());
        out.push('\t');
        opt_text(out, parcel.certificate_no.as_deref());
        out.push('\t');
        opt_text(out, parcel.source_crs.as_deref());
        out.push('\t');
        text(out, &serde_json::to_string(&parcel.extra).unwrap_or_else(|_| "{}".to_owned()));
        out.push('\t');
        hex(out, &to_ewkb(&parcel.geometry, SRID_WGS84));
        let _ = writeln!(out, "\t{valid_from}\t{batch}\t{}", crate::fingerprint(parcel));

        for (ordinal, holder) in parcel.right_holders.iter().enumerate() {
            let out = &mut holders;
            let _ = write!(out, "{id}\t{ordinal}\t");
            text(out, &holder.name);
            out.push('\t');
            opt_text(out, holder.citizen_id.as_deref());
            out.push('\t');
            opt_num(out, holder.birth_year);
            out.push('\t');
            opt_text(out, holder.address.as_deref());
            out.push('\n');
        }
    }
    (versions, holders)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_control_characters_and_backslashes() {
        let mut out = String::new();
        text(&mut out, "Tổ 5\tthôn\\Đông\nHòa");
        assert_eq!(out, "Tổ 5\\tthôn\\\\Đông\\nHòa");
        let mut out = String::new();
        opt_text(&mut out, None);
        assert_eq!(out, "\\N");
    }
}
