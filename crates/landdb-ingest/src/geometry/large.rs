//! Validity of large polygons (road and river parcels with thousands of vertices) in
//! O(n log n): geo's check compares every edge of a ring with every other, which for one river
//! of 20,000 vertices costs more than the whole rest of a commune. The same rules, found through
//! an R-tree of edges: no ring crosses or touches itself, rings of one parcel may touch at a point
//! but never cross, holes lie inside their shell, parts lie outside each other.

use geo::line_intersection::{LineIntersection, line_intersection};
use geo::{Coord, Line, MultiPolygon};
use landdb_model::planar::EdgeBands;
use rstar::primitives::GeomWithData;
use rstar::{RTree, RTreeObject};

/// An edge with its ring (numbered across the whole geometry) and its place in the ring.
type Edge = GeomWithData<Line<f64>, (usize, usize)>;

/// Edge comparisons allowed per edge (plus [`COMPARISONS_FIXED`]); real boundaries need a few.
pub const COMPARISONS_PER_EDGE: usize = 64;
const COMPARISONS_FIXED: usize = 100_000;

/// The first problem found, worded like geo's validation (a self-intersection says "intersect").
pub fn first_problem(geometry: &MultiPolygon<f64>) -> Option<String> {
    let rings: Vec<&[Coord<f64>]> = geometry
        .0
        .iter()
        .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
        .map(|r| r.0.as_slice())
        .collect();
    if rings.iter().flat_map(|r| r.iter()).any(|c| !c.x.is_finite() || !c.y.is_finite()) {
        return Some("a coordinate is not a finite number".into());
    }
    let edges: Vec<Edge> = rings
        .iter()
        .enumerate()
        .flat_map(|(r, ring)| ring.windows(2).enumerate().map(move |(i, e)| Edge::new(Line::new(e[0], e[1]), (r, i))))
        .collect();
    let tree = RTree::bulk_load(edges.clone());
    let budget = std::cell::Cell::new(COMPARISONS_PER_EDGE * edges.len() + COMPARISONS_FIXED);
    // Counts one comparison; false once the budget is spent.
    let spend = || {
        budget.set(budget.get().saturating_sub(1));
        budget.get() > 0
    };
    let too_intricate = || {
        Some(format!(
            "the boundary is too intricate to check ({} edges, whose boxes overlap more than \
             {COMPARISONS_PER_EDGE} times an edge)",
            edges.len()
        ))
    };
    for edge in &edges {
        let (ring, _) = edge.data;
        for other in tree.locate_in_envelope_intersecting(&edge.envelope()) {
            if !spend() {
                return too_intricate();
            }
            if other.data <= edge.data {
                continue;
            }
            let (a, b) = (edge.geom(), other.geom());
            if other.data.0 == ring {
                // geo's rule: edges of one ring meet only where one ends and the next begins.
                if geo::Intersects::intersects(a, b) && a.start != b.end && a.end != b.start {
                    return Some(format!("ring {} has a self-intersection", ring + 1));
                }
            } else {
                if let Some(
                    LineIntersection::SinglePoint { is_proper: true, .. } | LineIntersection::Collinear { .. },
                ) = line_intersection(*a, *b)
                {
                    return Some(format!("rings {} and {} intersect", ring + 1, other.data.0 + 1));
                }
            }
        }
    }
    // With no crossings, one vertex off the other's boundary tells inside from outside.
    let bands = |ring: &geo::LineString<f64>| EdgeBands::from_edges(ring.0.windows(2).map(|e| [e[0], e[1]]).collect());
    let exteriors: Vec<EdgeBands> = geometry.0.iter().map(|p| bands(p.exterior())).collect();
    // A vertex of ring `own` that lies on no other ring.
    let off_others = |own: usize, ring: &[Coord<f64>]| {
        ring.iter().copied().find(|c| {
            !tree
                .locate_in_envelope_intersecting(&rstar::AABB::from_point(geo::Point(*c)))
                .any(|e| !spend() || (e.data.0 != own && geo::Intersects::intersects(e.geom(), c)))
        })
    };
    let mut ring_number = 0;
    let mut firsts = Vec::new();
    for polygon in &geometry.0 {
        firsts.push(ring_number);
        ring_number += 1 + polygon.interiors().len();
    }
    for (k, polygon) in geometry.0.iter().enumerate() {
        for (h, hole) in polygon.interiors().iter().enumerate() {
            if off_others(firsts[k] + 1 + h, &hole.0).is_some_and(|c| !exteriors[k].contains(c)) {
                return Some(format!("polygon {} has a hole outside its exterior", k + 1));
            }
        }
        if let Some(c) = off_others(firsts[k], &polygon.exterior().0)
            && let Some((j, _)) = exteriors.iter().enumerate().find(|(j, e)| *j != k && e.contains(c))
            && !geometry.0[j].interiors().iter().any(|h| bands(h).contains(c))
        {
            return Some(format!("polygons {} and {} overlap", j + 1, k + 1));
        }
    }
    if budget.get() == 0 {
        return too_intricate();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Polygon, Validation};

    /// Long parallel edges that never cross, every box over every other: refused in bounded time
    /// instead of compared pair by pair.
    #[test]
    fn a_shape_made_to_defeat_the_index_is_refused_quickly() {
        let n = 20_000;
        let mut ring = Vec::new();
        for i in 0..n {
            let y = f64::from(i) * 2.0;
            // Out along one diagonal, back along the next: a zigzag of nested long edges.
            let (a, b) = if i % 2 == 0 { (0.0, 1000.0) } else { (1000.0, 0.0) };
            ring.push(Coord { x: a, y: y + a });
            ring.push(Coord { x: b, y: y + b });
        }
        ring.push(ring[0]);
        let g = MultiPolygon(vec![Polygon::new(geo::LineString(ring), vec![])]);
        let started = std::time::Instant::now();
        let problem = first_problem(&g);
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
        assert!(problem.is_some());
    }

    proptest::proptest! {
        /// Agrees with geo's validation on random rings: sorted by angle (a star, valid) or in
        /// random order (nearly always crossing itself), with or without a hole, and with a second
        /// part beside or over the first.
        #[test]
        fn agrees_with_geo(
            points in proptest::collection::vec((0.0f64..std::f64::consts::TAU, 0.3f64..1.0), 4..40),
            sorted in proptest::bool::ANY,
            hole in proptest::bool::ANY,
            second in proptest::option::of(-3.0f64..3.0),
        ) {
            let mut points = points;
            if sorted {
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
            let mut ring: Vec<Coord<f64>> = points.iter().map(|(a, r)| Coord { x: r * a.cos(), y: r * a.sin() }).collect();
            ring.dedup();
            proptest::prop_assume!(ring.len() >= 3);
            ring.push(ring[0]);
            let holes = if hole {
                vec![geo::LineString::from(vec![(-0.1, -0.1), (0.1, -0.1), (0.1, 0.1), (-0.1, 0.1), (-0.1, -0.1)])]
            } else {
                vec![]
            };
            let mut parts = vec![Polygon::new(geo::LineString(ring), holes)];
            if let Some(dx) = second {
                parts.push(Polygon::new(
                    geo::LineString::from(vec![(dx, -0.5), (dx + 0.5, -0.5), (dx + 0.5, 0.5), (dx, 0.5), (dx, -0.5)]),
                    vec![],
                ));
            }
            let g = MultiPolygon(parts);
            proptest::prop_assert_eq!(first_problem(&g).is_none(), g.is_valid(), "{:?} {:?}", first_problem(&g), g.validation_errors());
        }
    }
}
