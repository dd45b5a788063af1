//! `COPY … FROM STDIN (FORMAT binary)` encodings of parcel versions and right holders: every value
//! as PostgreSQL's own binary form, so that it parses no text (no hex of geometries, no decimal
//! floats) and landdb formats none.

use chrono::{DateTime, Utc};
use landdb_model::{BatchId, Parcel};

use crate::data_keys::DataKey;
use crate::geometry::{SRID_WGS84, ewkb_from_wkb, to_wkb};

pub(super) const PARCEL_VERSION: &str = "COPY parcel_version (id, national_id, commune_code, sheet, parcel_no, \
    commune_code_received, province_code, land_use, legal_area_m2, measured_area_m2, geometry_area_m2, address, \
    certificate_no, source_crs, extra, geom, valid_from, batch_id, fingerprint) FROM STDIN (FORMAT binary)";
const PARCEL_VERSION_COLUMNS: i16 = 19;

/// Sealed holders are bytes, which text COPY would double as hex for PostgreSQL to undo.
pub(super) const RIGHT_HOLDER: &str =
    "COPY right_holder (version_id, ordinal, key_id, sealed, citizen_index) FROM STDIN (FORMAT binary)";

/// The start of a binary COPY stream: signature, flags, header extension length.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Its end.
const BINARY_TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// PostgreSQL's type OID of `text`, named in a binary array.
const TEXT_OID: u32 = 25;
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

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

fn text(out: &mut Vec<u8>, value: Option<&str>) {
    field(out, value.map(str::as_bytes));
}

fn float8(out: &mut Vec<u8>, value: Option<f64>) {
    field(out, value.map(f64::to_be_bytes).as_ref().map(<[u8; 8]>::as_slice));
}

/// A one-dimensional `text[]` (empty: no dimensions).
fn text_array<'a>(out: &mut Vec<u8>, values: impl ExactSizeIterator<Item = &'a str>) {
    let n = values.len();
    let start = out.len();
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&i32::from(n > 0).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&TEXT_OID.to_be_bytes());
    if n > 0 {
        out.extend_from_slice(&i32::try_from(n).unwrap_or(i32::MAX).to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        for v in values {
            text(out, Some(v));
        }
    }
    let len = i32::try_from(out.len() - start - 4).unwrap_or(i32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// `jsonb`: its format version (1), then the JSON text.
fn jsonb(out: &mut Vec<u8>, value: &serde_json::Map<String, serde_json::Value>) {
    let start = out.len();
    out.extend_from_slice(&0i32.to_be_bytes());
    out.push(1);
    // Writing plain data to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
    let len = i32::try_from(out.len() - start - 4).unwrap_or(i32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Encodes into `versions` and `holders` (emptied first) the rows of both tables for parcels
/// that get the version IDs `ids`, right holders sealed under `key`; `holders` is left empty
/// when no parcel has one.
pub(super) fn encode(
    parcels: &[Parcel],
    ids: &[i64],
    valid_from: DateTime<Utc>,
    batch: BatchId,
    key: &DataKey,
    versions: &mut Vec<u8>,
    holders: &mut Vec<u8>,
) {
    let valid_from = (valid_from.timestamp_micros() - POSTGRES_EPOCH_MICROS).to_be_bytes();
    let batch = batch.0.to_be_bytes();
    versions.clear();
    versions.extend_from_slice(BINARY_HEADER);
    holders.clear();
    holders.extend_from_slice(BINARY_HEADER);
    for (parcel, id) in parcels.iter().zip(ids) {
        // One WKB for the fingerprint and the stored geometry.
        let wkb = to_wkb(&parcel.geometry);
        let fingerprint = crate::fingerprint::fingerprint_with_wkb(parcel, &wkb);
        let out = &mut *versions;
        out.extend_from_slice(&PARCEL_VERSION_COLUMNS.to_be_bytes());
        field(out, Some(&id.to_be_bytes()));
        for value in [
            parcel.national_id.as_str(),
            parcel.key.commune.as_str(),
            &parcel.key.sheet,
            &parcel.key.number,
            &parcel.commune_code_received,
            parcel.province.as_str(),
        ] {
            text(out, Some(value));
        }
        text_array(out, parcel.land_use.iter().map(|c| c.as_str()));
        float8(out, parcel.legal_area_m2);
        float8(out, parcel.measured_area_m2);
        float8(out, Some(parcel.geometry_area_m2));
        text(out, parcel.address.as_deref());
        text(out, parcel.certificate_no.as_deref());
        text(out, parcel.source_crs.as_deref());
        jsonb(out, &parcel.extra);
        field(out, Some(&ewkb_from_wkb(&wkb, SRID_WGS84)));
        field(out, Some(&valid_from));
        field(out, Some(&batch));
        text(out, Some(&fingerprint));

        for (ordinal, holder) in parcel.right_holders.iter().enumerate() {
            let ordinal = i16::try_from(ordinal).unwrap_or(i16::MAX);
            let sealed = key.seal_holder(*id, ordinal, holder);
            let out = &mut *holders;
            out.extend_from_slice(&5i16.to_be_bytes());
            field(out, Some(&id.to_be_bytes()));
            field(out, Some(&ordinal.to_be_bytes()));
            field(out, Some(&sealed.key_id.to_be_bytes()));
            field(out, Some(&sealed.sealed));
            field(out, sealed.citizen_index.as_deref());
        }
    }
    versions.extend_from_slice(&BINARY_TRAILER);
    if holders.len() == BINARY_HEADER.len() {
        holders.clear();
    } else {
        holders.extend_from_slice(&BINARY_TRAILER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_fields_are_postgres_own_forms() {
        let mut out = Vec::new();
        field(&mut out, Some(&[0, 0xab]));
        field(&mut out, None);
        assert_eq!(out, [0, 0, 0, 2, 0, 0xab, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(BINARY_HEADER.len(), 19);

        let mut out = Vec::new();
        text_array(&mut out, ["ODT", "CLN"].into_iter());
        let mut want = vec![0, 0, 0, 34];
        for n in [1i32, 0, 25, 2, 1] {
            want.extend_from_slice(&n.to_be_bytes());
        }
        want.extend_from_slice(&[0, 0, 0, 3, b'O', b'D', b'T', 0, 0, 0, 3, b'C', b'L', b'N']);
        assert_eq!(out, want);
        let mut out = Vec::new();
        text_array(&mut out, std::iter::empty());
        assert_eq!(out, [0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25]);

        let mut out = Vec::new();
        jsonb(&mut out, &serde_json::Map::new());
        assert_eq!(out, [0, 0, 0, 3, 1, b'{', b'}']);
        let epoch = DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z").expect("a time").timestamp_micros();
        assert_eq!(epoch, POSTGRES_EPOCH_MICROS);
    }
}
