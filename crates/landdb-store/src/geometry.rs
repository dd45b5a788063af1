//! Geometry encoding for the stores: WKB (through the `wkb` crate) and PostGIS's EWKB with SRID.

use geo::{Geometry, MultiPolygon};
use wkb::Endianness;
use wkb::writer::WriteOptions;

use crate::{Result, StoreError};

pub(crate) const SRID_WGS84: u32 = 4326;

/// Little-endian WKB of a multipolygon.
pub(crate) fn to_wkb(geometry: &MultiPolygon<f64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + geometry.0.iter().map(|p| 16 * p.exterior().0.len() + 9).sum::<usize>());
    // Writing to a Vec cannot fail.
    let _ = wkb::writer::write_geometry(&mut out, geometry, &WriteOptions { endianness: Endianness::LittleEndian });
    out
}

/// EWKB of the geometry whose WKB is `wkb`: the SRID flag and the SRID after the header, which
/// is what a `geometry(MultiPolygon, 4326)` column accepts as COPY input.
pub(crate) fn ewkb_from_wkb(wkb: &[u8], srid: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(wkb.len() + 4);
    out.push(wkb[0]);
    let ty = u32::from_le_bytes([wkb[1], wkb[2], wkb[3], wkb[4]]) | 0x2000_0000;
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&srid.to_le_bytes());
    out.extend_from_slice(&wkb[5..]);
    out
}

pub(crate) fn from_wkb(bytes: &[u8]) -> Result<MultiPolygon<f64>> {
    use geo_traits::to_geo::ToGeoGeometry;
    let wkb = wkb::reader::read_wkb(bytes).map_err(|e| StoreError::Corrupt(format!("geometry: {e}")))?;
    match wkb.to_geometry() {
        Geometry::MultiPolygon(mp) => Ok(mp),
        Geometry::Polygon(p) => Ok(MultiPolygon(vec![p])),
        other => Err(StoreError::Corrupt(format!("expected a multipolygon, found {other:?}"))),
    }
}

pub(crate) fn bbox(geometry: &MultiPolygon<f64>) -> Option<geo::Rect<f64>> {
    use geo::BoundingRect;
    geometry.bounding_rect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Coord, LineString, Polygon};
    use proptest::prelude::*;

    fn ring() -> impl Strategy<Value = LineString<f64>> {
        prop::collection::vec((102.0f64..110.0, 8.0f64..23.5), 3..40).prop_map(|pts| {
            let mut ls = LineString(pts.into_iter().map(|(x, y)| Coord { x, y }).collect());
            ls.close();
            ls
        })
    }

    fn multi_polygon() -> impl Strategy<Value = MultiPolygon<f64>> {
        prop::collection::vec((ring(), prop::collection::vec(ring(), 0..3)), 1..4)
            .prop_map(|polys| MultiPolygon(polys.into_iter().map(|(ext, holes)| Polygon::new(ext, holes)).collect()))
    }

    proptest! {
        #[test]
        fn wkb_round_trip_is_bit_exact(geometry in multi_polygon()) {
            prop_assert_eq!(from_wkb(&to_wkb(&geometry)).expect("reads back"), geometry);
        }

        #[test]
        fn ewkb_is_wkb_with_the_srid(geometry in multi_polygon()) {
            let wkb = to_wkb(&geometry);
            let ewkb = ewkb_from_wkb(&wkb, SRID_WGS84);
            prop_assert_eq!(ewkb.len(), wkb.len() + 4);
            prop_assert_eq!(u32::from_le_bytes([ewkb[1], ewkb[2], ewkb[3], ewkb[4]]), 6 | 0x2000_0000);
            prop_assert_eq!(u32::from_le_bytes([ewkb[5], ewkb[6], ewkb[7], ewkb[8]]), 4326);
            prop_assert_eq!(&ewkb[9..], &wkb[5..]);
        }
    }
}
