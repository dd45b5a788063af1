//! Parcels as GeoJSON features (RFC 7946), written straight into the response body: coordinates
//! in the shortest form that reads back as the same double, properties chosen by the caller
//! within what their [`Access`] allows.

use landdb_crs::Transformer;
use landdb_engine::Parcel;
use landdb_model::VersionId;

use crate::crs::OutputCrs;

use crate::access::Access;
use crate::ogc::ApiError;
use crate::scope::Release;

/// A property of a parcel feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    NationalId,
    Commune,
    Sheet,
    Number,
    LandUse,
    AreaM2,
    /// Personal data: shown only with [`Access::personal_data`].
    Address,
}

impl Field {
    pub const ALL: [Field; 7] =
        [Field::NationalId, Field::Commune, Field::Sheet, Field::Number, Field::LandUse, Field::AreaM2, Field::Address];

    pub fn name(self) -> &'static str {
        match self {
            Field::NationalId => "national_id",
            Field::Commune => "commune",
            Field::Sheet => "sheet",
            Field::Number => "number",
            Field::LandUse => "land_use",
            Field::AreaM2 => "area_m2",
            Field::Address => "address",
        }
    }

    pub fn is_personal(self) -> bool {
        self == Field::Address
    }

    /// Every field the caller may see.
    pub fn visible(access: &Access) -> Vec<Field> {
        Field::ALL.into_iter().filter(|f| access.personal_data() || !f.is_personal()).collect()
    }

    /// The fields named in a `properties` parameter, or all visible ones. A name the caller may
    /// not see is refused as unknown, not as forbidden: it gives nothing away.
    pub fn selected(raw: Option<&str>, access: &Access) -> Result<Vec<Field>, ApiError> {
        let visible = Field::visible(access);
        let Some(raw) = raw else { return Ok(visible) };
        raw.split(',')
            .filter(|n| !n.trim().is_empty())
            .map(|name| {
                let name = name.trim();
                visible.iter().copied().find(|f| f.name() == name).ok_or_else(|| {
                    let names: Vec<&str> = visible.iter().map(|f| f.name()).collect();
                    ApiError::bad_parameter(format!(
                        "properties: `{name}` is not a property of parcels; they have {}",
                        names.join(", ")
                    ))
                })
            })
            .collect()
    }
}

/// Appends the parcel as a GeoJSON feature with `fields`; its `id` is the version.
/// How coordinates are written: the CRS, and the transformer into it when it is not the stored
/// WGS84 (build it once for many features: PROJ objects are costly to make).
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    pub crs: &'a OutputCrs,
    pub transformer: Option<&'a Transformer>,
}

impl Output<'_> {
    /// Coordinates as stored: WGS84, longitude first.
    fn as_stored(&self) -> bool {
        self.transformer.is_none() && !self.crs.latitude_first
    }
}

/// Appends the released parcels as GeoJSON features, separated by commas (one parcel: one
/// feature).
pub fn write_features(out: &mut Vec<u8>, release: &Release<'_>, fields: &[Field], output: &Output<'_>) {
    let mut buf = Vec::new();
    for (i, p) in release.parcels().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_feature(out, p, fields, &mut buf, output);
    }
}

/// Each released parcel as a GeoJSON feature of its own, appended to `out` after what `before`
/// writes for it (the change feed puts each inside its event).
pub fn each_feature(
    out: &mut Vec<u8>,
    release: &Release<'_>,
    fields: &[Field],
    output: &Output<'_>,
    mut before: impl FnMut(&mut Vec<u8>, VersionId),
) {
    let mut buf = Vec::new();
    for p in release.parcels() {
        before(out, p.version());
        write_feature(out, p, fields, &mut buf, output);
    }
}

/// `buf` is scratch space for the boundary, kept by the caller across features. Visible to the
/// answer writers only: everything else writes a [`Release`].
pub(in crate::answer) fn write_feature(
    out: &mut Vec<u8>,
    parcel: &Parcel<'_>,
    fields: &[Field],
    buf: &mut Vec<(i64, i64)>,
    output: &Output<'_>,
) {
    out.extend_from_slice("{\"type\":\"Feature\",\"id\":".as_bytes());
    integer(out, parcel.version().0);
    out.extend_from_slice(",\"geometry\":".as_bytes());
    write_boundary(out, parcel, buf, output);
    out.extend_from_slice(",\"properties\":{\"version\":".as_bytes());
    integer(out, parcel.version().0);
    let key = fields.iter().any(|f| matches!(f, Field::Sheet | Field::Number)).then(|| parcel.key());
    for field in fields {
        out.extend_from_slice(",\"".as_bytes());
        out.extend_from_slice(field.name().as_bytes());
        out.extend_from_slice("\":".as_bytes());
        match field {
            Field::NationalId => json_string(out, parcel.national_id().as_str()),
            Field::Commune => json_string(out, parcel.commune().as_str()),
            Field::Sheet => json_string(out, key.as_ref().map_or("", |k| k.sheet.as_str())),
            Field::Number => json_string(out, key.as_ref().map_or("", |k| k.number.as_str())),
            Field::LandUse => {
                out.push(b'[');
                for (i, code) in parcel.land_use().iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json_string(out, code.as_str());
                }
                out.push(b']');
            }
            // To the square centimetre: the boundary is exact, the area a derived figure.
            Field::AreaM2 => number(out, (parcel.area_m2() * 1e4).round() / 1e4),
            Field::Address => match parcel.address() {
                Some(a) => json_string(out, &a),
                None => out.extend_from_slice("null".as_bytes()),
            },
        }
    }
    out.extend_from_slice("}}".as_bytes());
}

/// `s` as a JSON string.
pub(crate) fn json_string(out: &mut Vec<u8>, s: &str) {
    if is_plain(s.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // serde_json escapes exactly as JSON requires.
        out.extend_from_slice(serde_json::Value::from(s).to_string().as_bytes());
    }
}

/// Whether `bytes` need no escape in a JSON string (no control character, quote or backslash).
/// Eight bytes at a time (every lookup's links and properties pass here): a byte below 0x20, or
/// one equal to `"` or `\`, sets the high bit of its lane.
fn is_plain(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_lane = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let chunks = bytes.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        let v = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
        let below_space = v.wrapping_sub(ONES * 0x20) & !v & HIGH;
        if below_space | zero_lane(v ^ (ONES * u64::from(b'"'))) | zero_lane(v ^ (ONES * u64::from(b'\\'))) != 0 {
            return false;
        }
    }
    tail.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// A number as text that reads back as the same double. A coordinate on the storage grid is
/// written as its exact decimal, at most eight places (integer arithmetic, four times faster than
/// the general algorithm); anything else in ryu's shortest form.
fn number(out: &mut Vec<u8>, v: f64) {
    if let Some(k) = landdb_model::grid::units(v) {
        grid_decimal(out, k);
    } else if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice("null".as_bytes());
    }
}

/// `k / 10⁸` as a decimal: reading it back gives the double nearest to it, which is the grid
/// coordinate itself. Digits written by hand: `fmt` machinery cost more than the rest of a
/// feature.
fn grid_decimal(out: &mut Vec<u8>, k: i64) {
    let mut buf = [0u8; 24];
    let start = grid_digits_before(&mut buf, 24, k);
    out.extend_from_slice(&buf[start..]);
}

/// A vertex `[x,y]` (after a comma unless it is the first), built in one buffer and appended
/// with one copy: a feature has hundreds of them.
fn grid_vertex(out: &mut Vec<u8>, x: i64, y: i64, first: bool) {
    let mut buf = [0u8; 56];
    let mut i = buf.len() - 1;
    buf[i] = b']';
    i = grid_digits_before(&mut buf, i, y);
    i -= 1;
    buf[i] = b',';
    i = grid_digits_before(&mut buf, i, x);
    i -= 1;
    buf[i] = b'[';
    if !first {
        i -= 1;
        buf[i] = b',';
    }
    out.extend_from_slice(&buf[i..]);
}

/// Writes `k / 10⁸` as a decimal so that it ends just before `end` in `buf` (which must have 22
/// bytes free before it); returns where it starts. The fraction's trailing zeros are not written.
fn grid_digits_before(buf: &mut [u8], end: usize, k: i64) -> usize {
    const UNITS: u64 = 100_000_000;
    // "00", "01", … "99": two digits a step.
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
                                2021222324252627282930313233343536373839\
                                4041424344454647484950515253545556575859\
                                6061626364656667686970717273747576777879\
                                8081828384858687888990919293949596979899";
    let k_abs = k.unsigned_abs();
    let mut i = end;
    let mut fraction = k_abs % UNITS;
    if fraction != 0 {
        let mut digits = 8;
        while fraction.is_multiple_of(10) {
            fraction /= 10;
            digits -= 1;
        }
        while digits >= 2 {
            let pair = (fraction % 100) as usize * 2;
            fraction /= 100;
            i -= 2;
            buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
            digits -= 2;
        }
        if digits == 1 {
            i -= 1;
            buf[i] = b'0' + fraction as u8;
        }
        i -= 1;
        buf[i] = b'.';
    }
    let mut whole = k_abs / UNITS;
    loop {
        i -= 1;
        buf[i] = b'0' + (whole % 10) as u8;
        whole /= 10;
        if whole == 0 {
            break;
        }
    }
    if k < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    i
}

fn integer(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// The parcel's boundary as a GeoJSON MultiPolygon, written as it is decoded: from grid units
/// straight to digits when it is on the grid.
fn write_boundary(out: &mut Vec<u8>, parcel: &Parcel<'_>, buf: &mut Vec<(i64, i64)>, output: &Output<'_>) {
    out.extend_from_slice(b"{\"type\":\"MultiPolygon\",\"coordinates\":[");
    let mut polygons = 0;
    let mut open_ring = |out: &mut Vec<u8>, exterior: bool| {
        if exterior || polygons == 0 {
            if polygons > 0 {
                out.extend_from_slice(b"]],");
            }
            out.extend_from_slice(b"[[");
            polygons += 1;
        } else {
            out.extend_from_slice(b"],[");
        }
    };
    // In another CRS: transformed, axes in the CRS's order, rounded to what is worth writing.
    let scale = 10f64.powi(output.crs.decimals);
    let write_other = |out: &mut Vec<u8>, c: geo::Coord<f64>| {
        let c = output.transformer.map_or(Ok(c), |t| t.coord(c)).unwrap_or(geo::Coord { x: f64::NAN, y: f64::NAN });
        let (a, b) = if output.crs.latitude_first { (c.y, c.x) } else { (c.x, c.y) };
        out.push(b'[');
        number(out, (a * scale).round() / scale);
        out.push(b',');
        number(out, (b * scale).round() / scale);
        out.push(b']');
    };
    if !output.as_stored() {
        parcel.for_each_ring(|exterior, vertices| {
            open_ring(out, exterior);
            for (k, c) in vertices.enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                write_other(out, c);
            }
        });
        if polygons > 0 {
            out.extend_from_slice(b"]]");
        }
        out.extend_from_slice(b"]}");
        return;
    }
    let on_grid = parcel.for_each_grid_ring(buf, |exterior, ring| {
        open_ring(out, exterior);
        for (k, (x, y)) in ring.iter().enumerate() {
            grid_vertex(out, *x, *y, k == 0);
        }
    });
    if !on_grid {
        parcel.for_each_ring(|exterior, vertices| {
            open_ring(out, exterior);
            for (k, c) in vertices.enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                out.push(b'[');
                number(out, c.x);
                out.push(b',');
                number(out, c.y);
                out.push(b']');
            }
        });
    }
    if polygons > 0 {
        out.extend_from_slice(b"]]");
    }
    out.extend_from_slice(b"]}");
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        /// The eight-bytes-at-a-time test says what a byte-by-byte one says, on any bytes (the
        /// escapes and their neighbours most of all).
        #[test]
        fn plain_strings_are_found_as_byte_by_byte(bytes in proptest::collection::vec(
            proptest::prop_oneof![proptest::num::u8::ANY, proptest::sample::select(vec![0x1f, 0x20, 0x21, b'"', b'\\', 0x5b, 0x5d, 0x7f, 0x80, 0xff])],
            0..40,
        )) {
            let expected = bytes.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\');
            proptest::prop_assert_eq!(super::is_plain(&bytes), expected);
        }
    }

    use super::*;

    proptest::proptest! {
        /// Grid units as decimal degrees: the whole part, a point and the fraction's digits
        /// without trailing zeros, as plain long division writes them.
        #[test]
        fn grid_units_are_written_as_exact_decimals(k in -20_000_000_000i64..20_000_000_000) {
            let mut out = Vec::new();
            grid_decimal(&mut out, k);
            let whole = k.unsigned_abs() / 100_000_000;
            let fraction = format!("{:08}", k.unsigned_abs() % 100_000_000);
            let fraction = fraction.trim_end_matches('0');
            let sign = if k < 0 { "-" } else { "" };
            let expected = if fraction.is_empty() { format!("{sign}{whole}") } else { format!("{sign}{whole}.{fraction}") };
            proptest::prop_assert_eq!(String::from_utf8(out).expect("utf-8"), expected.clone());
            let mut vertex = Vec::new();
            grid_vertex(&mut vertex, k, -k, false);
            let negated = if k > 0 { format!("-{expected}") } else { expected.trim_start_matches('-').to_owned() };
            proptest::prop_assert_eq!(String::from_utf8(vertex).expect("utf-8"), format!(",[{expected},{negated}]"));
        }
    }
    use geo::MultiPolygon;
    use landdb_engine::{ParcelRecord, Snapshot};
    use landdb_model::{CommuneCode, FeedPosition, LandUseCode, NationalParcelId, ParcelKey, VersionId};

    proptest::proptest! {
        /// Numbers read back as the same doubles, on the grid or off it.
        #[test]
        fn numbers_read_back_exactly(v in -180.0f64..180.0, snap in proptest::bool::ANY) {
            let v = if snap { landdb_model::grid::snap(v) } else { v };
            let mut out = Vec::new();
            number(&mut out, v);
            let out = String::from_utf8(out).expect("UTF-8");
            proptest::prop_assert_eq!(out.parse::<f64>().map(f64::to_bits), Ok(v.to_bits()), "{}", out);
        }

        /// A feature written from the engine reads back (serde_json) as the same boundary, bit
        /// for bit, and the same properties, parts and holes included, whatever the texts hold.
        #[test]
        fn features_read_back_exactly(
            parts in 1usize..3, holes in 0usize..2, sheet in "[0-9A-Za-z\"\\\\ /\u{0}-\u{1f}Đ]{1,5}",
            address in proptest::option::of("[a-zA-ZĐđơư \"\\\\,]{0,20}"), x in 102.0f64..110.0, y in 8.0f64..23.0,
        ) {
            let s = landdb_model::grid::snap;
            let square = |x0: f64, y0: f64, d: f64| geo::LineString::from(vec![
                (s(x0), s(y0)), (s(x0 + d), s(y0)), (s(x0 + d), s(y0 + d)), (s(x0), s(y0 + d)),
            ]);
            let geometry = MultiPolygon((0..parts).map(|k| {
                let x0 = x + k as f64 * 0.01;
                geo::Polygon::new(square(x0, y, 0.005), (0..holes).map(|_| square(x0 + 0.001, y + 0.001, 0.001)).collect())
            }).collect());
            let record = ParcelRecord {
                version: VersionId(42),
                key: ParcelKey { commune: CommuneCode::parse("20194").expect("code"), sheet: sheet.clone(), number: "7".into() },
                national_id: NationalParcelId::from_wgs84(geo::Point::new(x, y)).expect("id"),
                land_use: vec![LandUseCode::parse("ODT").expect("code"), LandUseCode::parse("CLN").expect("code")],
                area_m2: 123.456789,
                address: address.clone(),
                geometry: geometry.clone(),
            };
            let snapshot = Snapshot::build([record], FeedPosition(0));
            let parcel = snapshot.parcels().next().expect("parcel");
            let mut out = Vec::new();
            let crs = OutputCrs::crs84();
            write_feature(&mut out, &parcel, &Field::ALL, &mut Vec::new(), &Output { crs: &crs, transformer: None });
            let feature: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
            let read: geojson::Geometry = serde_json::from_value(feature["geometry"].clone()).expect("geometry");
            let read: geo::MultiPolygon<f64> = read.try_into().expect("multipolygon");
            proptest::prop_assert_eq!(read, geometry);
            proptest::prop_assert_eq!(feature["properties"]["sheet"].as_str(), Some(sheet.as_str()));
            proptest::prop_assert_eq!(feature["properties"]["address"].as_str(), address.as_deref());
            proptest::prop_assert_eq!(feature["properties"]["land_use"].clone(), serde_json::json!(["ODT", "CLN"]));
            proptest::prop_assert_eq!(feature["properties"]["area_m2"].as_f64(), Some(123.4568));
        }
    }
}
