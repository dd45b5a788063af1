//! Areas computed from geometry, in square metres on the WGS84 ellipsoid.

use geo::{GeodesicArea, MultiPolygon};

/// Geodesic area (Karney) of a WGS84 lon/lat geometry in m². It differs from the area in the
/// VN-2000 TM-3 plane by the zone's scale (at most about 0.03 %), which is why declared areas are
/// compared with a tolerance, never for equality.
pub fn geodesic_area_m2(geometry: &MultiPolygon<f64>) -> f64 {
    geometry.geodesic_area_unsigned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    #[test]
    fn a_hundred_metre_square_near_da_nang_is_about_a_hectare() {
        // 100 m east-west at 16° N is 100 / (111_320 · cos 16°) degrees.
        let dlon = 100.0 / (111_320.0 * 16f64.to_radians().cos());
        let dlat = 100.0 / 110_700.0;
        let sq = polygon![(x: 108.2, y: 16.0), (x: 108.2 + dlon, y: 16.0), (x: 108.2 + dlon, y: 16.0 + dlat), (x: 108.2, y: 16.0 + dlat)];
        let a = geodesic_area_m2(&MultiPolygon(vec![sq]));
        assert!((a - 10_000.0).abs() < 50.0, "area {a}");
    }
}
