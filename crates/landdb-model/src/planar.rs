//! Plane geometry the hot paths need, on raw coordinates: distance to a polygon's boundary with
//! its sign (inside or out), in one pass over the edges, or through an index of the edges for
//! the large polygons (roads, rivers) that would otherwise cost as much as all the rest.

use geo::{Coord, Line, MultiPolygon, Polygon};
use rstar::RTree;

/// Polygons with more edges than this are measured through [`Boundary::Indexed`].
pub const INDEXED_FROM: usize = 256;

/// A polygon's boundary, ready for many distance questions.
#[derive(Debug)]
pub enum Boundary<'a> {
    Plain(Vec<&'a [Coord<f64>]>),
    /// Bands for the crossing test, an R-tree of edges for the nearest one.
    Indexed {
        bands: EdgeBands,
        edges: RTree<Line<f64>>,
    },
}

impl<'a> Boundary<'a> {
    pub fn new(polygon: &'a Polygon<f64>) -> Self {
        let rings: Vec<&[Coord<f64>]> =
            std::iter::once(polygon.exterior()).chain(polygon.interiors()).map(|r| r.0.as_slice()).collect();
        let count: usize = rings.iter().map(|r| r.len().saturating_sub(1)).sum();
        if count <= INDEXED_FROM {
            return Self::Plain(rings);
        }
        let lines: Vec<Line<f64>> = rings.iter().flat_map(|r| r.windows(2).map(|e| Line::new(e[0], e[1]))).collect();
        Self::Indexed {
            bands: EdgeBands::from_edges(lines.iter().map(|l| [l.start, l.end]).collect()),
            edges: RTree::bulk_load(lines),
        }
    }

    /// Distance from `p` to the boundary: positive inside, negative outside.
    pub fn signed_distance(&self, p: Coord<f64>) -> f64 {
        match self {
            Self::Plain(rings) => signed_distance(p, rings),
            Self::Indexed { bands, edges } => {
                // The iterator, not `nearest_neighbor`: that one prunes more than the iterator
                // and, over segments, answered an edge that is not the nearest (found by the
                // property test below; the case is kept in proptest-regressions).
                let nearest = edges
                    .nearest_neighbor_iter(&geo::Point(p))
                    .next()
                    .map_or(f64::INFINITY, |l| segment_distance_squared(p, l.start, l.end).sqrt());
                if bands.contains(p) { nearest } else { -nearest }
            }
        }
    }
}

/// Distance from `p` to the nearest edge of `rings`: positive inside (even-odd), negative outside.
pub fn signed_distance(p: Coord<f64>, rings: &[&[Coord<f64>]]) -> f64 {
    let mut inside = false;
    let mut nearest = f64::INFINITY;
    for ring in rings {
        for edge in ring.windows(2) {
            let (a, b) = (edge[0], edge[1]);
            if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
                inside = !inside;
            }
            nearest = nearest.min(segment_distance_squared(p, a, b));
        }
    }
    if inside { nearest.sqrt() } else { -nearest.sqrt() }
}

fn segment_distance_squared(p: Coord<f64>, a: Coord<f64>, b: Coord<f64>) -> f64 {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let mut q = a;
    if dx != 0.0 || dy != 0.0 {
        let t = ((p.x - a.x) * dx + (p.y - a.y) * dy) / (dx * dx + dy * dy);
        if t > 1.0 {
            q = b;
        } else if t > 0.0 {
            q = Coord { x: a.x + dx * t, y: a.y + dy * t };
        }
    }
    (p.x - q.x).powi(2) + (p.y - q.y).powi(2)
}

/// How deep `p` lies inside `geometry`: the distance to its nearest boundary, negative outside.
pub fn depth(p: Coord<f64>, geometry: &MultiPolygon<f64>) -> f64 {
    let mut best = f64::NEG_INFINITY;
    for polygon in &geometry.0 {
        let rings: Vec<&[Coord<f64>]> =
            std::iter::once(polygon.exterior()).chain(polygon.interiors()).map(|r| r.0.as_slice()).collect();
        best = best.max(signed_distance(p, &rings));
    }
    best
}

/// Whether `p` lies inside `geometry` and farther than `margin` from every edge of the polygon
/// holding it. The cheap crossing test comes first; edges are measured only for a point inside,
/// and the first edge nearer than `margin` ends the search.
pub fn deeper_than(p: Coord<f64>, geometry: &MultiPolygon<f64>, margin: f64) -> bool {
    let margin_squared = margin * margin;
    geometry.0.iter().any(|polygon| {
        let rings = || std::iter::once(polygon.exterior()).chain(polygon.interiors());
        let mut inside = false;
        for ring in rings() {
            for edge in ring.0.windows(2) {
                let (a, b) = (edge[0], edge[1]);
                if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
                    inside = !inside;
                }
            }
        }
        inside
            && rings().all(|ring| ring.0.windows(2).all(|e| segment_distance_squared(p, e[0], e[1]) > margin_squared))
    })
}

/// A polygon's edges sorted into horizontal bands, for many point tests against one large
/// polygon (a road or river parcel with thousands of vertices and hundreds of neighbours): the
/// crossing test looks only at the edges of the point's band.
#[derive(Debug)]
pub struct EdgeBands {
    min_y: f64,
    max_y: f64,
    height: f64,
    bands: Vec<Vec<[Coord<f64>; 2]>>,
    edges: Vec<[Coord<f64>; 2]>,
}

impl EdgeBands {
    pub fn new(geometry: &MultiPolygon<f64>) -> Self {
        Self::from_edges(
            geometry
                .0
                .iter()
                .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
                .flat_map(|ring| ring.0.windows(2).map(|e| [e[0], e[1]]))
                .collect(),
        )
    }

    pub fn from_edges(edges: Vec<[Coord<f64>; 2]>) -> Self {
        let min_y = edges.iter().map(|e| e[0].y).fold(f64::INFINITY, f64::min);
        let max_y = edges.iter().map(|e| e[0].y).fold(f64::NEG_INFINITY, f64::max);
        let count = (edges.len() as f64).sqrt().ceil().max(1.0) as usize;
        let height = ((max_y - min_y) / count as f64).max(f64::MIN_POSITIVE);
        let band_of = |y: f64| (((y - min_y) / height) as usize).min(count - 1);
        let mut bands = vec![Vec::new(); count];
        for e in &edges {
            let (low, high) = (e[0].y.min(e[1].y), e[0].y.max(e[1].y));
            for band in &mut bands[band_of(low)..=band_of(high)] {
                band.push(*e);
            }
        }
        Self { min_y, max_y, height, bands, edges }
    }

    /// [`deeper_than`] for the geometry these bands were made of (a valid one: its polygons
    /// do not overlap, so one crossing count over all of them tells inside from outside).
    pub fn deeper_than(&self, p: Coord<f64>, margin: f64) -> bool {
        let margin_squared = margin * margin;
        self.contains(p) && self.edges.iter().all(|[a, b]| segment_distance_squared(p, *a, *b) > margin_squared)
    }

    /// Whether `p` is inside (even-odd over every edge, counting only those of its band).
    pub fn contains(&self, p: Coord<f64>) -> bool {
        if !(p.y > self.min_y && p.y < self.max_y) {
            return false;
        }
        let band = (((p.y - self.min_y) / self.height) as usize).min(self.bands.len() - 1);
        let mut inside = false;
        for [a, b] in &self.bands[band] {
            if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
                inside = !inside;
            }
        }
        inside
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Contains, Distance, Euclidean, Point, polygon};

    /// A star with one vertex per radius, evenly turned, and a square hole at its centre.
    fn star_with_hole(radii: &[f64]) -> geo::Polygon<f64> {
        let n = radii.len();
        let ring: Vec<(f64, f64)> = radii
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let a = std::f64::consts::TAU * i as f64 / n as f64;
                (r * a.cos(), r * a.sin())
            })
            .collect();
        let hole = vec![(-0.1, -0.1), (0.1, -0.1), (0.1, 0.1), (-0.1, 0.1)];
        geo::Polygon::new(ring.into(), vec![hole.into()])
    }

    proptest::proptest! {
        /// Bands give the same answers as the plain test on a many-sided star with a hole.
        #[test]
        fn bands_agree_with_the_plain_test(
            radii in proptest::collection::vec(0.3f64..1.0, 3..300),
            x in -1.0f64..1.0, y in -1.0f64..1.0, margin in 0.0f64..0.2,
        ) {
            let g = MultiPolygon(vec![star_with_hole(&radii)]);
            let p = Coord { x, y };
            proptest::prop_assert_eq!(EdgeBands::new(&g).deeper_than(p, margin), deeper_than(p, &g, margin));
        }

        /// The indexed boundary measures like the plain one on a many-sided star with a hole.
        #[test]
        fn indexed_boundary_agrees_with_the_plain_one(
            radii in proptest::collection::vec(0.3f64..1.0, 300..700),
            x in -1.0f64..1.0, y in -1.0f64..1.0,
        ) {
            let polygon = star_with_hole(&radii);
            let indexed = Boundary::new(&polygon);
            let is_indexed = matches!(indexed, Boundary::Indexed { .. });
            proptest::prop_assert!(is_indexed);
            let rings: Vec<&[Coord<f64>]> = std::iter::once(polygon.exterior()).chain(polygon.interiors()).map(|r| r.0.as_slice()).collect();
            let p = Coord { x, y };
            proptest::prop_assert!((indexed.signed_distance(p) - signed_distance(p, &rings)).abs() < 1e-12);
        }

        /// Agrees with geo's `contains` and `Euclidean` distance on a square with a hole.
        #[test]
        fn depth_agrees_with_geo(x in -1.0f64..11.0, y in -1.0f64..11.0) {
            let square = polygon![
                exterior: [(x: 0.0, y: 0.0), (x: 10.0, y: 0.0), (x: 10.0, y: 10.0), (x: 0.0, y: 10.0)],
                interiors: [[(x: 4.0, y: 4.0), (x: 6.0, y: 4.0), (x: 6.0, y: 6.0), (x: 4.0, y: 6.0)]],
            ];
            let p = Point::new(x, y);
            let d = depth(p.0, &MultiPolygon(vec![square.clone()]));
            let boundary = Euclidean.distance(&p, square.exterior()).min(Euclidean.distance(&p, &square.interiors()[0]));
            proptest::prop_assert!((d.abs() - boundary).abs() < 1e-9);
            if boundary > 1e-9 {
                proptest::prop_assert_eq!(d > 0.0, square.contains(&p));
            }
            let banded = EdgeBands::new(&MultiPolygon(vec![square.clone()]));
            for margin in [0.0, 0.5, 2.0] {
                proptest::prop_assert_eq!(deeper_than(p.0, &MultiPolygon(vec![square.clone()]), margin), d > margin);
                proptest::prop_assert_eq!(banded.deeper_than(p.0, margin), d > margin);
            }
        }
    }
}
