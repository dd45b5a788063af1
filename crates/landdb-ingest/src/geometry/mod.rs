//! Geometry checks and the repairs that are safe: closing an unclosed ring, dropping repeated
//! vertices, cutting out a spike, turning a ring the right way round. A self-intersecting
//! boundary is not guessed at: the record is rejected.

use geo::orient::{Direction, Orient};
use geo::{Coord, LineString, MultiPolygon, Polygon, Validation};

mod large;

use crate::source::RawPolygon;
use crate::verdict::{Reason, ReasonCode};

/// Drops consecutive repeats; true if any.
fn dedup(ring: &mut Vec<Coord<f64>>) -> bool {
    let before = ring.len();
    ring.dedup();
    ring.len() != before
}

/// Removes `a, s, a` excursions (the ring goes out to `s` and straight back); the number removed.
fn remove_spikes(ring: &mut Vec<Coord<f64>>) -> usize {
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

/// Checks and safely repairs the rings of one record; returns the geometry (if usable) and the
/// reasons (repairs say what was changed).
pub fn check_and_repair(polygons: &[RawPolygon]) -> (Option<MultiPolygon<f64>>, Vec<Reason>) {
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
    let large = geometry
        .0
        .iter()
        .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
        .any(|r| r.0.len() > landdb_model::planar::INDEXED_FROM);
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

    fn codes(reasons: &[Reason]) -> Vec<ReasonCode> {
        reasons.iter().map(|r| r.code).collect()
    }

    #[test]
    fn safe_repairs_are_made_and_recorded() {
        // Clockwise, unclosed, with a repeated vertex and a spike.
        let ring =
            vec![c(0.0, 0.0), c(0.0, 10.0), c(0.0, 10.0), c(10.0, 10.0), c(15.0, 15.0), c(10.0, 10.0), c(10.0, 0.0)];
        let (g, reasons) = check_and_repair(&[vec![ring]]);
        let g = g.expect("repaired");
        assert_eq!(
            codes(&reasons),
            [ReasonCode::UnclosedRing, ReasonCode::DuplicateVertices, ReasonCode::Spike, ReasonCode::RingOrientation]
        );
        assert_eq!(g.0[0].exterior().0.len(), 5);
        assert!(g.is_valid());
    }

    #[test]
    fn a_bowtie_is_rejected_not_guessed_at() {
        let ring = vec![c(0.0, 0.0), c(10.0, 10.0), c(10.0, 0.0), c(0.0, 10.0), c(0.0, 0.0)];
        let (g, reasons) = check_and_repair(&[vec![ring]]);
        assert!(g.is_none());
        assert_eq!(codes(&reasons), [ReasonCode::SelfIntersection]);
    }

    #[test]
    fn a_clean_square_passes_untouched() {
        let ring = vec![c(0.0, 0.0), c(10.0, 0.0), c(10.0, 10.0), c(0.0, 10.0), c(0.0, 0.0)];
        let (g, reasons) = check_and_repair(&[vec![ring.clone()]]);
        assert!(reasons.is_empty());
        assert_eq!(g.expect("valid").0[0].exterior().0, ring);
    }
}
