//! The coordinate grid: every WGS84 coordinate landdb stores lies on a grid of 10⁻⁸ degree (about
//! 1.1 mm, finer than any cadastral survey). The import snaps boundaries to it after reprojection,
//! so the store, PostGIS and the query engine hold the very same numbers: the engine keeps them as
//! small integers (deltas of grid units) and still answers exactly as PostGIS does.
//!
//! A coordinate on the grid is the double nearest to `k / 10⁸` for an integer `k`; dividing the
//! integer by 10⁸ (exact in binary) gives that double back bit for bit.

use geo::{Coord, LineString, MultiPolygon};

/// Grid units in a degree.
pub const UNITS_PER_DEGREE: f64 = 1e8;

/// The grid coordinate nearest to `degrees`.
pub fn snap(degrees: f64) -> f64 {
    (degrees * UNITS_PER_DEGREE).round() / UNITS_PER_DEGREE
}

/// The grid units of `degrees` if it lies exactly on the grid.
pub fn units(degrees: f64) -> Option<i64> {
    let k = (degrees * UNITS_PER_DEGREE).round();
    (k.abs() < 9.0e15 && k / UNITS_PER_DEGREE == degrees).then_some(k as i64)
}

/// The coordinate of `units` grid units.
pub fn degrees(units: i64) -> f64 {
    units as f64 / UNITS_PER_DEGREE
}

/// Snaps every vertex to the grid and drops a vertex that lands on the one before it (two
/// vertices closer than a millimetre), as long as the ring keeps four positions.
pub fn snap_geometry(geometry: &mut MultiPolygon<f64>) {
    let snap_ring = |ring: &mut LineString<f64>| {
        let mut kept: Vec<Coord<f64>> = Vec::with_capacity(ring.0.len());
        for c in &ring.0 {
            let c = Coord { x: snap(c.x), y: snap(c.y) };
            if kept.last() != Some(&c) {
                kept.push(c);
            }
        }
        if kept.len() >= 4 {
            ring.0 = kept;
        } else {
            ring.0.iter_mut().for_each(|c| *c = Coord { x: snap(c.x), y: snap(c.y) });
        }
    };
    for polygon in &mut geometry.0 {
        polygon.exterior_mut(snap_ring);
        polygon.interiors_mut(|rings| rings.iter_mut().for_each(snap_ring));
    }
}

/// Whether every vertex lies on the grid.
pub fn on_grid(geometry: &MultiPolygon<f64>) -> bool {
    use geo::CoordsIter;
    geometry.coords_iter().all(|c| units(c.x).is_some() && units(c.y).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    proptest::proptest! {
        /// A snapped coordinate is on the grid, within half a unit of where it was, and its units
        /// give it back bit for bit.
        #[test]
        fn snapped_coordinates_round_trip(v in -180.0f64..180.0) {
            let s = snap(v);
            let k = units(s).expect("on the grid");
            proptest::prop_assert_eq!(degrees(k).to_bits(), s.to_bits());
            proptest::prop_assert!((s - v).abs() <= 0.5 / UNITS_PER_DEGREE + 1e-15);
            proptest::prop_assert_eq!(snap(s).to_bits(), s.to_bits());
        }

        /// Integers read back as themselves.
        #[test]
        fn units_round_trip(k in -18_000_000_000i64..18_000_000_000) {
            proptest::prop_assert_eq!(units(degrees(k)), Some(k));
        }
    }

    #[test]
    fn snapping_drops_vertices_closer_than_the_grid_and_keeps_rings_closed() {
        let mut g = MultiPolygon(vec![polygon![
            (x: 108.0, y: 16.0), (x: 108.001, y: 16.0), (x: 108.001_000_000_1, y: 16.0),
            (x: 108.001, y: 16.001), (x: 108.0, y: 16.001)
        ]]);
        snap_geometry(&mut g);
        assert_eq!(g.0[0].exterior().0.len(), 5);
        assert!(g.0[0].exterior().is_closed());
        assert!(on_grid(&g));
        let not = MultiPolygon(vec![polygon![(x: 0.1 + 0.2, y: 0.0), (x: 1.0, y: 0.0), (x: 1.0, y: 1.0)]]);
        assert!(!on_grid(&not));
    }
}
