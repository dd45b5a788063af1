//! `COPY … FROM STDIN` encodings of parcel versions and right holders (text format).

use std::fmt::Write;

use chrono::{DateTime, Utc};
use landdb_model::{BatchId, Parcel};

use crate::data_keys::DataKey;
use crate::geometry::{SRID_WGS84, to_ewkb};

pub(super) const PARCEL_VERSION: &str = "COPY parcel_version (id, national_id, commune_code, sheet, parcel_no, \
    commune_code_received, province_code, land_use, legal_area_m2, measured_area_m2, geometry_area_m2, address, \
    certificate_no, source_crs, extra, geom, valid_from, batch_id, fingerprint) FROM STDIN";

/// Binary: sealed holders are bytes, which text COPY would double as hex for PostgreSQL to undo.
pub(super) const RIGHT_HOLDER: &str =
    "COPY right_holder (version_id, ordinal, key_id, sealed, citizen_index) FROM STDIN (FORMAT binary)";

/// The start of a binary COPY stream: signature, flags, header extension length.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

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

/// One field of a binary COPY row: its length, then its bytes (`None`: NULL).
fn field(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(bytes) => {
            out.extend_from_slice(&i32::try_from(bytes.len()).unwrap_or(i32::MAX).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

/// Encodes the rows of both tables for parcels that get the version IDs `ids`, right holders
/// sealed under `key`.
pub(super) fn encode(
    parcels: &[Parcel],
    ids: &[i64],
    valid_from: DateTime<Utc>,
    batch: BatchId,
    key: &DataKey,
) -> (String, Vec<u8>) {
    let valid_from = valid_from.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut versions = String::with_capacity(parcels.len() * 1024);
    let mut holders = BINARY_HEADER.to_vec();
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
            let ordinal = i16::try_from(ordinal).unwrap_or(i16::MAX);
            let sealed = key.seal_holder(*id, ordinal, holder);
            let out = &mut holders;
            out.extend_from_slice(&5i16.to_be_bytes());
            field(out, Some(&id.to_be_bytes()));
            field(out, Some(&ordinal.to_be_bytes()));
            field(out, Some(&sealed.key_id.to_be_bytes()));
            field(out, Some(&sealed.sealed));
            field(out, sealed.citizen_index.as_deref());
        }
    }
    if holders.len() == BINARY_HEADER.len() {
        holders.clear();
    } else {
        holders.extend_from_slice(&(-1i16).to_be_bytes());
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
        let mut out = Vec::new();
        field(&mut out, Some(&[0, 0xab]));
        field(&mut out, None);
        assert_eq!(out, [0, 0, 0, 2, 0, 0xab, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(BINARY_HEADER.len(), 19);
    }
}
