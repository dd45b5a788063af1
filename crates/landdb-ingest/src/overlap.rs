//! Overlaps between neighbouring parcels of one upload. In a true tessellation neighbours share
//! boundaries and no vertex of one lies inside another; a vertex well inside a neighbour (more than
//! the tolerance from its boundary) means the two overlap. Found with an R-tree over bounding
//! boxes, checked in parallel.

use geo::{BoundingRect, Coord, CoordsIter, MultiPolygon};
use landdb_model::planar::{EdgeBands, deeper_than};
use rayon::prelude::*;
use rstar::{AABB, RTree, RTreeObject};

/// How far inside a neighbour a vertex must lie to count, in degrees (about 0.5 m): digitising
/// noise along a shared edge is not an overlap.
pub const TOLERANCE_DEG: f64 = 5e-6;

struct Entry {
    index: usize,
    envelope: AABB<[f64; 2]>,
}

impl RTreeObject for Entry {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        self.envelope
    }
}

/// Overlapping neighbours listed per parcel, at most: a parcel of a real fabric overlaps one or
/// two; a pile of copies overlaps all the others, and listing them would be quadratic.
pub const MAX_LISTED: usize = 16;

/// Neighbours whose boxes meet a parcel's box that are examined, at most, per vertex of the parcel
/// (and at least [`MIN_EXAMINED`]): a road or river crossing a commune has thousands of them and
/// as many vertices; a small parcel with thousands is inside a pile made to cost quadratic time.
const EXAMINED_PER_VERTEX: usize = 16;
const MIN_EXAMINED: usize = 256;

/// Geometries with more edges than this get [`EdgeBands`] for the many tests against them.
const BANDED_FROM: usize = 64;

/// Whether some vertex of `a` lies inside `b` (whose envelope is `rect`), farther than the
/// tolerance from `b`'s boundary.
fn pokes_into(
    a: &MultiPolygon<f64>,
    b: &MultiPolygon<f64>,
    b_bands: Option<&EdgeBands>,
    rect: &AABB<[f64; 2]>,
) -> bool {
    let (lower, upper) = (rect.lower(), rect.upper());
    let inside_box = |c: &Coord<f64>| {
        c.x > lower[0] + TOLERANCE_DEG
            && c.x < upper[0] - TOLERANCE_DEG
            && c.y > lower[1] + TOLERANCE_DEG
            && c.y < upper[1] - TOLERANCE_DEG
    };
    a.0.iter().flat_map(|p| p.exterior().coords()).filter(|c| inside_box(c)).any(|c| match b_bands {
        Some(bands) => bands.deeper_than(*c, TOLERANCE_DEG),
        None => deeper_than(*c, b, TOLERANCE_DEG),
    })
}

/// For each geometry, the indices of the others it overlaps ([`MAX_LISTED`] at most, in the
/// R-tree's order; the work is bounded by [`EXAMINED_PER_VERTEX`]).
pub fn overlapping(geometries: &[&MultiPolygon<f64>]) -> Vec<Vec<usize>> {
    let entries: Vec<Entry> = geometries
        .iter()
        .enumerate()
        .filter_map(|(index, g)| {
            let r = g.bounding_rect()?;
            Some(Entry { index, envelope: AABB::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]) })
        })
        .collect();
    let envelopes: Vec<Option<AABB<[f64; 2]>>> = {
        let mut v = vec![None; geometries.len()];
        for e in &entries {
            v[e.index] = Some(e.envelope);
        }
        v
    };
    let tree = RTree::bulk_load(entries);
    let bands: Vec<Option<EdgeBands>> =
        geometries.par_iter().map(|g| (g.coords_count() > BANDED_FROM).then(|| EdgeBands::new(g))).collect();
    (0..geometries.len())
        .into_par_iter()
        .map(|i| {
            let Some(envelope) = envelopes[i] else { return Vec::new() };
            let examined = (EXAMINED_PER_VERTEX * geometries[i].coords_count()).max(MIN_EXAMINED);
            tree.locate_in_envelope_intersecting(&envelope)
                .filter(|e| e.index != i)
                .take(examined)
                .filter(|e| {
                    pokes_into(geometries[i], geometries[e.index], bands[e.index].as_ref(), &e.envelope)
                        || pokes_into(geometries[e.index], geometries[i], bands[i].as_ref(), &envelope)
                })
                .map(|e| e.index)
                .take(MAX_LISTED)
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    fn square(x: f64, y: f64, size: f64) -> MultiPolygon<f64> {
        MultiPolygon(vec![polygon![(x: x, y: y), (x: x + size, y: y), (x: x + size, y: y + size), (x: x, y: y + size)]])
    }

    /// Piles of parcels, every box over every other: copies of one parcel (whose vertices all lie
    /// on each other's boundaries, so none overlaps) and copies shifted a metre or so (each
    /// overlapping all): the work and the lists stay linear.
    #[test]
    fn piles_are_checked_in_linear_time() {
        let n = 5_000;
        let copies: Vec<MultiPolygon<f64>> = (0..n).map(|_| square(108.0, 16.0, 0.0002)).collect();
        let shifted: Vec<MultiPolygon<f64>> = (0..n)
            .map(|i| square(108.0 + f64::from(i % 10) * 1e-5, 16.0 + f64::from(i / 10 % 10) * 1e-5, 0.0002))
            .collect();
        for (pile, listed) in [(copies, 0), (shifted, MAX_LISTED)] {
            let refs: Vec<&MultiPolygon<f64>> = pile.iter().collect();
            let started = std::time::Instant::now();
            let found = overlapping(&refs);
            assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
            assert!(found.iter().all(|f| f.len() == listed));
        }
    }

    #[test]
    fn neighbours_sharing_an_edge_do_not_overlap_but_a_pushed_one_does() {
        let d = 0.0002;
        let a = square(108.0, 16.0, d);
        let b = square(108.0 + d, 16.0, d);
        // Shifted into a's corner: one of its vertices lies 3 m inside a.
        let pushed = square(108.0 + d - 0.00003, 16.0 + 0.00003, d);
        let far = square(109.0, 16.0, d);
        let found = overlapping(&[&a, &b, &pushed, &far]);
        assert_eq!(found[0], [2]);
        assert_eq!(found[1].len(), 1, "b and pushed overlap: {:?}", found[1]);
        assert!(found[3].is_empty());
    }
}
