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

/// EWKB: WKB with the SRID flag and the SRID after the header, which is what a
/// `geometry(MultiPolygon, 4326)` column accepts as COPY input.
pub(crate) fn to_ewkb(geometry: &MultiPolygon<f64>, srid: u32) -> Vec<u8> {
    let wkb = to_wkb(geometry);
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
