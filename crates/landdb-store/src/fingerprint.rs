//! A fingerprint of a parcel's content, stored with each version, so a replacing upload can leave
//! unchanged parcels untouched.

use geo::MultiPolygon;
use landdb_model::{LandUseCode, NationalParcelId, Parcel, ParcelKey, ProvinceCode, RightHolder};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// SHA-256 (hex) over the geometry's WKB and every other field, right holders included.
pub fn fingerprint(parcel: &Parcel) -> String {
    fingerprint_with_wkb(parcel, &crate::geometry::to_wkb(&parcel.geometry))
}

/// [`fingerprint`] of a parcel whose geometry's WKB is `wkb` (made once for both the fingerprint
/// and the stored geometry).
pub(crate) fn fingerprint_with_wkb(parcel: &Parcel, wkb: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(wkb);
    // Serialising plain data cannot fail.
    hasher.update(serde_json::to_vec(&Rest::of(parcel)).unwrap_or_default());
    let mut hex = String::with_capacity(64);
    for b in hasher.finalize() {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 15)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A parcel without its geometry, serialised exactly as `Parcel` is with an empty one (the same
/// fields in the same order: the fingerprints already stored stay valid), without copying it.
#[derive(Serialize)]
struct Rest<'a> {
    national_id: &'a NationalParcelId,
    key: &'a ParcelKey,
    commune_code_received: &'a str,
    province: &'a ProvinceCode,
    land_use: &'a [LandUseCode],
    legal_area_m2: Option<f64>,
    measured_area_m2: Option<f64>,
    geometry_area_m2: f64,
    address: &'a Option<String>,
    certificate_no: &'a Option<String>,
    geometry: MultiPolygon<f64>,
    source_crs: &'a Option<String>,
    extra: &'a serde_json::Map<String, serde_json::Value>,
    right_holders: &'a [RightHolder],
}

impl<'a> Rest<'a> {
    fn of(p: &'a Parcel) -> Self {
        // Every field named: a field added to `Parcel` does not compile here until it is placed.
        let Parcel {
            national_id,
            key,
            commune_code_received,
            province,
            land_use,
            legal_area_m2,
            measured_area_m2,
            geometry_area_m2,
            address,
            certificate_no,
            geometry: _,
            source_crs,
            extra,
            right_holders,
        } = p;
        Rest {
            national_id,
            key,
            commune_code_received,
            province,
            land_use,
            legal_area_m2: *legal_area_m2,
            measured_area_m2: *measured_area_m2,
            geometry_area_m2: *geometry_area_m2,
            address,
            certificate_no,
            geometry: MultiPolygon(Vec::new()),
            source_crs,
            extra,
            right_holders,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The fingerprint as first written (a copy of the parcel with its geometry emptied): the
    /// oracle the stored fingerprints were made by.
    fn as_first_written(parcel: &Parcel) -> String {
        let mut hasher = Sha256::new();
        hasher.update(crate::geometry::to_wkb(&parcel.geometry));
        let mut rest = parcel.clone();
        rest.geometry = MultiPolygon(Vec::new());
        hasher.update(serde_json::to_vec(&rest).unwrap_or_default());
        hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    proptest! {
        #[test]
        fn fingerprints_are_those_already_stored(
            lon in 102.0f64..110.0,
            lat in 8.0f64..23.0,
            number in "[0-9]{1,4}",
            legal in proptest::option::of(1.0f64..1e6),
            address in proptest::option::of("[a-zA-Zàáạảãâầấậẩẫđ \\t\\n\"\\\\]{0,30}"),
            holders in 0usize..3,
            extra in proptest::collection::btree_map("[A-Za-z_]{1,8}", "[a-zA-Zđ0-9 ]{0,12}", 0..4),
        ) {
            use geo::{Coord, LineString, Polygon};
            use landdb_model::CommuneCode;
            let d = 0.0002;
            let ring = LineString(
                [(lon, lat), (lon + d, lat), (lon + d, lat + d), (lon, lat)].iter().map(|&(x, y)| Coord { x, y }).collect(),
            );
            let geometry = MultiPolygon(vec![Polygon::new(ring, Vec::new())]);
            let parcel = Parcel {
                national_id: NationalParcelId::from_wgs84(geo::Point::new(lon, lat)).expect("an id"),
                key: ParcelKey::new(CommuneCode::parse("20194").expect("code"), "12", &number),
                commune_code_received: "20194".into(),
                province: ProvinceCode::parse("48").expect("code"),
                land_use: LandUseCode::parse_list("ODT+CLN").expect("codes"),
                legal_area_m2: legal,
                measured_area_m2: Some(401.25),
                geometry_area_m2: 398.5,
                address,
                certificate_no: None,
                geometry,
                source_crs: Some("EPSG:5899".into()),
                extra: extra.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect(),
                right_holders: (0..holders)
                    .map(|i| RightHolder {
                        name: format!("Trần Văn {i}"),
                        citizen_id: (i == 0).then(|| "048090001234".to_owned()),
                        birth_year: Some(1968),
                        address: None,
                    })
                    .collect(),
            };
            prop_assert_eq!(fingerprint(&parcel), as_first_written(&parcel));
        }
    }
}
