//! Mapbox Vector Tiles of the current parcels, in the WebMercatorQuad tile matrix set (OGC API –
//! Tiles order: `{z}/{y}/{x}`), for the map viewer and any GIS that reads MVT. Tiles come straight
//! from the engine's R-tree: no database round trip, no cache to go stale.

use geo::{Coord, LineString};
use landdb_engine::Parcel;
use mvt::{GeomEncoder, GeomType, Tile};

use crate::ogc::ApiError;
use crate::scope::Release;

/// The tile's own coordinate range (the MVT default).
pub const EXTENT: u32 = 4096;
/// Below this zoom a tile would hold tens of thousands of parcels too small to see: such tiles
/// are empty, and the viewer asks the user to zoom in.
pub const MIN_ZOOM: u8 = 13;
/// The deepest tiles served; clients overzoom beyond it.
pub const MAX_ZOOM: u8 = 20;
pub const MEDIA_TYPE: &str = "application/vnd.mapbox-vector-tile";
/// The layer the parcels are in.
pub const LAYER: &str = "parcels";

/// A tile's address in WebMercatorQuad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileId {
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

impl TileId {
    pub fn new(z: u32, y: u32, x: u32) -> Result<TileId, ApiError> {
        let z8 = u8::try_from(z).ok().filter(|z| *z <= MAX_ZOOM).ok_or_else(|| {
            ApiError::not_found(format!("there is no tile matrix {z} in WebMercatorQuad here (0 to {MAX_ZOOM})"))
        })?;
        let n = 1u32 << z8;
        if x >= n || y >= n {
            return Err(ApiError::not_found(format!("tile {z}/{y}/{x} lies outside the tile matrix ({n} by {n})")));
        }
        Ok(TileId { z: z8, x, y })
    }

    /// The tile's bounds in longitude and latitude.
    pub fn bounds(self) -> geo::Rect<f64> {
        let n = f64::from(1u32 << self.z);
        let lon = |x: f64| x / n * 360.0 - 180.0;
        let lat = |y: f64| (std::f64::consts::PI * (1.0 - 2.0 * y / n)).sinh().atan().to_degrees();
        let (x, y) = (f64::from(self.x), f64::from(self.y));
        geo::Rect::new((lon(x), lat(y + 1.0)), (lon(x + 1.0), lat(y)))
    }

    /// A WGS84 position in this tile's coordinates (y down, 0 to [`EXTENT`] inside the tile).
    fn to_tile(self, c: Coord<f64>) -> (f64, f64) {
        let n = f64::from(1u32 << self.z);
        let x = (c.x + 180.0) / 360.0 * n;
        let lat = c.y.to_radians();
        let y = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * n;
        let e = f64::from(EXTENT);
        ((x - f64::from(self.x)) * e, (y - f64::from(self.y)) * e)
    }
}

/// The tile: every released parcel (those of the caller that meet it), with public properties
/// only. Parcels are not clipped (coordinates may leave the extent, as the specification allows):
/// a parcel is small next to a tile, and its outline then joins up across tiles.
pub fn tile(release: &Release<'_>, id: TileId) -> Result<Vec<u8>, ApiError> {
    let mut tile = Tile::new(EXTENT);
    let mut layer = tile.create_layer(LAYER);
    let failed = |e: mvt::Error| ApiError::internal(&e);
    for parcel in release.parcels() {
        let Some(geometry) = encode(parcel, id).map_err(failed)? else { continue };
        let mut feature = layer.into_feature(geometry);
        feature.set_id(u64::try_from(parcel.version().0).unwrap_or_default());
        feature.add_tag_sint("id", parcel.version().0);
        feature.add_tag_string("commune", parcel.commune().as_str());
        let key = parcel.key();
        tag_number_or_text(&mut feature, "sheet", &key.sheet);
        tag_number_or_text(&mut feature, "number", &key.number);
        if let Some(code) = parcel.land_use().first() {
            feature.add_tag_string("land_use", code.as_str());
        }
        feature.add_tag_double("area_m2", (parcel.area_m2() * 10.0).round() / 10.0);
        layer = feature.into_layer();
    }
    tile.add_layer(layer).map_err(|e| ApiError::internal(&e))?;
    tile.to_bytes().map_err(|e| ApiError::internal(&e))
}

fn tag_number_or_text(feature: &mut mvt::Feature, key: &str, value: &str) {
    match value.parse::<i64>() {
        Ok(n) => feature.add_tag_sint(key, n),
        Err(_) => feature.add_tag_string(key, value),
    }
}

/// The parcel's rings in tile coordinates; exterior rings wound clockwise on screen (positive
/// area with y down) and holes the other way, as MVT 2 requires. `None` when every ring collapses
/// to less than a pixel's worth of points.
fn encode(parcel: &Parcel<'_>, id: TileId) -> Result<Option<mvt::GeomData>, mvt::Error> {
    let mut encoder = GeomEncoder::new(GeomType::Polygon);
    let mut rings = 0;
    for polygon in parcel.geometry() {
        let (exterior, interiors) = polygon.into_inner();
        for (ring, is_exterior) in std::iter::once((exterior, true)).chain(interiors.into_iter().map(|r| (r, false))) {
            let mut points = tile_ring(&ring, id);
            if points.len() < 4 {
                if is_exterior {
                    break; // the holes of a collapsed polygon go with it
                }
                continue;
            }
            let area: f64 = points.windows(2).map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1).sum();
            if (area > 0.0) != is_exterior {
                points.reverse();
            }
            // The closing point is implied by ClosePath.
            for &(x, y) in &points[..points.len() - 1] {
                encoder.add_point(x, y)?;
            }
            encoder.complete_geom()?;
            rings += 1;
        }
    }
    if rings == 0 { Ok(None) } else { encoder.encode().map(Some) }
}

/// A ring in whole tile units, repeated points dropped.
fn tile_ring(ring: &LineString<f64>, id: TileId) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(ring.0.len());
    for c in &ring.0 {
        let (x, y) = id.to_tile(*c);
        let p = (x.round(), y.round());
        if out.last() != Some(&p) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_bounds_and_positions_agree() {
        // Đà Nẵng at zoom 15.
        let (lon, lat): (f64, f64) = (108.2208, 16.0678);
        let n = f64::from(1u32 << 15);
        let x = ((lon + 180.0) / 360.0 * n).floor() as u32;
        let y = ((1.0 - (lat.to_radians().tan() + 1.0 / lat.to_radians().cos()).ln() / std::f64::consts::PI) / 2.0 * n)
            .floor() as u32;
        let id = TileId::new(15, y, x).expect("tile");
        let b = id.bounds();
        assert!(b.min().x <= lon && lon <= b.max().x && b.min().y <= lat && lat <= b.max().y, "{b:?}");
        let (tx, ty) = id.to_tile(Coord { x: lon, y: lat });
        assert!((0.0..4096.0).contains(&tx) && (0.0..4096.0).contains(&ty), "{tx} {ty}");
        let (nw_x, nw_y) = id.to_tile(Coord { x: b.min().x, y: b.max().y });
        assert!(nw_x.abs() < 1e-6 && nw_y.abs() < 1e-6);
        assert!(TileId::new(15, 1 << 15, 0).is_err());
        assert!(TileId::new(30, 0, 0).is_err());
    }
}
