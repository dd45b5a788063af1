//! Geometry checks and the repairs that are safe: closing an unclosed ring, dropping repeated
//! vertices, cutting out a spike, turning a ring the right way round. A self-intersecting
//! boundary is not guessed at: the record is rejected.
//!
//! Nothing here (nor reprojection, nor the national ID) sees coordinates that were not checked
//! first: [`CheckedPolygons`] admits only finite coordinates within [`MAX_COORDINATE`] and at most
//! [`MAX_VERTICES`] vertices in [`MAX_RINGS`] rings, and every check below costs at most
//! O(n log n) in the vertices, with a budget where an adversarial shape could cost more.

use geo::orient::{Direction, Orient};
use geo::{Coord, LineString, MultiPolygon, Polygon, Validation};

mod large;

use crate::source::RawPolygon;
use crate::verdict::{Reason, ReasonCode};

/// No plane coordinate on Earth in any CRS a province uses comes near this (metres: TM-3 and UTM
/// eastings and northings are below 10⁷; degrees are below 360). Beyond it a coordinate is an
/// error, and the geometry algorithms are spared numbers they were never meant to meet (one vertex
/// of 1e308 made the interior-point search ask for gigabytes).
pub const MAX_COORDINATE: f64 = 1e8;

/// Vertices one record may have, in all its rings: the largest river parcels have tens of
/// thousands.
pub const MAX_VERTICES: usize = 250_000;

/// Rings (exteriors and holes) one record may have.
pub const MAX_RINGS: usize = 10_000;

/// A record's rings whose coordinates and size were checked: the only input the geometry checks,
/// the repairs, reprojection and the national ID accept.
#[derive(Debug, Clone, Copy)]
pub struct CheckedPolygons<'a>(&'a [RawPolygon]);

impl<'a> CheckedPolygons<'a> {
    /// The rings, if every coordinate is finite and within [`MAX_COORDINATE`] and there are not too
    /// many; else the reason, naming the first bad coordinate (polygon, ring and vertex, 1-based).
    pub fn new(polygons: &'a [RawPolygon]) -> Result<Self, Reason> {
        let rings: usize = polygons.iter().map(Vec::len).sum();
        let vertices: usize = polygons.iter().flatten().map(Vec::len).sum();
        if rings > MAX_RINGS || vertices > MAX_VERTICES {
            return Err(Reason::new(
                ReasonCode::TooManyVertices,
                format!(
                    "{vertices} vertices in {rings} rings; a record may have at most {MAX_VERTICES} vertices in \
                     {MAX_RINGS} rings"
                ),
            ));
        }
        for (p, rings) in polygons.iter().enumerate() {
            for (r, ring) in rings.iter().enumerate() {
                for (v, c) in ring.iter().enumerate() {
                    let bad = [c.x, c.y].into_iter().find(|n| !n.is_finite() || n.abs() > MAX_COORDINATE);
                    if let Some(n) = bad {
                        return Err(Reason::new(
                            ReasonCode::CoordinateOutOfRange,
                            format!(
                                "polygon {}, ring {}, vertex {}: coordinate {n:e} is {}",
                                p + 1,
                                r + 1,
                                v + 1,
                                if n.is_finite() {
                                    format!("beyond ±{MAX_COORDINATE:e}, far outside any map of the Earth")
                                } else {
                                    "not a finite number".to_owned()
                                }
                            ),
                        ));
                    }
                }
            }
        }
        Ok(Self(polygons))
    }
}

/// Drops consecutive repeats; true if any.
fn dedup(ring: &mut Vec<Coord<f64>>) -> bool {
    let before = ring.len();
    ring.dedup();
    ring.len() != before
}

/// Removes `a, s, a` excursions (the ring goes out to `s` and straight back), again and again
/// while removing one uncovers another, as long as four vertices remain; the number removed. One
/// pass with a stack: each vertex is pushed and popped at most once.
fn remove_spikes(ring: &mut Vec<Coord<f64>>) -> usize {
    let mut removed = 0;
    let mut kept: Vec<Coord<f64>> = Vec::with_capacity(ring.len());
    for (i, c) in ring.iter().enumerate() {
        // What is left: what was kept, plus this vertex and the ones after it.
        let left = kept.len() + ring.len() - i;
        if left >= 4 && kept.len() >= 2 && kept[kept.len() - 2] == *c {
            kept.pop();
            removed += 1;
        } else {
            kept.push(*c);
        }
    }
    *ring = kept;
    removed
}

/// Checks and safely repairs the rings of one record; returns the geometry (if usable) and the
/// reasons (repairs say what was changed).
pub fn check_and_repair(polygons: CheckedPolygons<'_>) -> (Option<MultiPolygon<f64>>, Vec<Reason>) {
    let polygons = polygons.0;
    let mut reasons = Vec::new();
    let mut out = Vec::new();
    let (mut unclosed, mut repeated, mut spikes) = (0, 0, 0);
    for rings in polygons {
        let mut fixed = Vec::new();
        for raw in rings {
            let mut ring = raw.clone();
            if ring.first() != ring.last() {
                if let Some(first) = ring.first().copied() {
                    ring.push(first);
                }
                unclosed += 1;
            }
            repeated += usize::from(dedup(&mut ring));
            spikes += remove_spikes(&mut ring);
            repeated += usize::from(dedup(&mut ring));
            if ring.len() < 4 {
                reasons.push(Reason::new(
                    ReasonCode::EmptyGeometry,
                    format!("a ring has {} distinct vertices", ring.len().saturating_sub(1)),
                ));
                return (None, reasons);
            }
            fixed.push(LineString(ring));
        }
        let mut rings = fixed.into_iter();
        let Some(exterior) = rings.next() else { continue };
        out.push(Polygon::new(exterior, rings.collect()));
    }
    if out.is_empty() {
        reasons.push(Reason::new(ReasonCode::EmptyGeometry, "no ring"));
        return (None, reasons);
    }
    if unclosed > 0 {
        reasons.push(Reason::new(ReasonCode::UnclosedRing, format!("closed {unclosed} ring(s)")));
    }
    if repeated > 0 {
        reasons.push(Reason::new(ReasonCode::DuplicateVertices, "removed repeated vertices"));
    }
    if spikes > 0 {
        reasons.push(Reason::new(ReasonCode::Spike, format!("removed {spikes} spike(s)")));
    }
    let geometry = MultiPolygon(out);
    // geo's check compares every edge with every other, ring with ring and part with part: fine
    // for a parcel, quadratic for a river or for ten thousand parts.
    let large = geometry
        .0
        .iter()
        .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
        .map(|r| r.0.len())
        .sum::<usize>()
        > landdb_model::planar::INDEXED_FROM;
    let problem = if large {
        large::first_problem(&geometry)
    } else {
        geometry.validation_errors().into_iter().next().map(|p| p.to_string())
    };
    if let Some(text) = problem {
        let code = if text.contains("intersect") { ReasonCode::SelfIntersection } else { ReasonCode::InvalidGeometry };
        reasons.push(Reason::new(code, text));
        return (None, reasons);
    }
    let oriented = geometry.orient(Direction::Default);
    if oriented != geometry {
        reasons.push(Reason::new(ReasonCode::RingOrientation, "reoriented rings (exterior counter-clockwise)"));
    }
    (Some(oriented), reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(x: f64, y: f64) -> Coord<f64> {
        Coord { x, y }
    }

    fn checked(polygons: &[RawPolygon]) -> CheckedPolygons<'_> {
        CheckedPolygons::new(polygons).expect("coordinates in range")
    }

    fn codes(reasons: &[Reason]) -> Vec<ReasonCode> {
        reasons.iter().map(|r| r.code).collect()
    }

    #[test]
    fn safe_repairs_are_made_and_recorded() {
        // Clockwise, unclosed, with a repeated vertex and a spike.
        let ring =
            vec![c(0.0, 0.0), c(0.0, 10.0), c(0.0, 10.0), c(10.0, 10.0), c(15.0, 15.0), c(10.0, 10.0), c(10.0, 0.0)];
        let (g, reasons) = check_and_repair(checked(&[vec![ring]]));
        let g = g.expect("repaired");
        assert_eq!(
            codes(&reasons),
            [ReasonCode::UnclosedRing, ReasonCode::DuplicateVertices, ReasonCode::Spike, ReasonCode::RingOrientation]
        );
        assert_eq!(g.0[0].exterior().0.len(), 5);
        assert!(g.is_valid());
    }

    /// The quadratic removal the one-pass one replaced, as the oracle.
    fn remove_spikes_by_draining(ring: &mut Vec<Coord<f64>>) -> usize {
        let mut removed = 0;
        let mut i = 1;
        while ring.len() >= 4 && i + 1 < ring.len() {
            if ring[i - 1] == ring[i + 1] {
                ring.drain(i..=i + 1);
                removed += 1;
                i = i.saturating_sub(1).max(1);
            } else {
                i += 1;
            }
        }
        removed
    }

    proptest::proptest! {
        /// Rings of a few distinct points, so that spikes and spikes behind spikes come up often.
        #[test]
        fn spikes_are_removed_as_the_quadratic_way_did(points in proptest::collection::vec(0u8..4, 0..40)) {
            let ring: Vec<Coord<f64>> = points.iter().map(|p| c(f64::from(*p), f64::from(*p % 2))).collect();
            let (mut ours, mut oracle) = (ring.clone(), ring);
            proptest::prop_assert_eq!(remove_spikes(&mut ours), remove_spikes_by_draining(&mut oracle));
            proptest::prop_assert_eq!(ours, oracle);
        }
    }

    /// A ring of a million vertices that is all spikes is cleaned in one pass.
    #[test]
    fn a_ring_of_spikes_is_cleaned_in_linear_time() {
        let mut ring: Vec<Coord<f64>> =
            (0..1_000_000).map(|i| if i % 2 == 0 { c(0.0, 0.0) } else { c(1.0, 1.0) }).collect();
        let started = std::time::Instant::now();
        remove_spikes(&mut ring);
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
        assert!(ring.len() <= 4, "{}", ring.len());
    }

    #[test]
    fn a_bowtie_is_rejected_not_guessed_at() {
        let ring = vec![c(0.0, 0.0), c(10.0, 10.0), c(10.0, 0.0), c(0.0, 10.0), c(0.0, 0.0)];
        let (g, reasons) = check_and_repair(checked(&[vec![ring]]));
        assert!(g.is_none());
        assert_eq!(codes(&reasons), [ReasonCode::SelfIntersection]);
    }

    #[test]
    fn a_clean_square_passes_untouched() {
        let ring = vec![c(0.0, 0.0), c(10.0, 0.0), c(10.0, 10.0), c(0.0, 10.0), c(0.0, 0.0)];
        let (g, reasons) = check_and_repair(checked(&[vec![ring.clone()]]));
        assert!(reasons.is_empty());
        assert_eq!(g.expect("valid").0[0].exterior().0, ring);
    }
}
