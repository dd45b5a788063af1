//! Parcel boundaries packed into one arena: every coordinate of every parcel in one vector, rings
//! as end offsets into it. No allocation per parcel, and a point test walks contiguous memory.

use std::ops::Range;

use geo::kernels::{Kernel, Orientation, RobustKernel};
use geo::{Coord, LineString, MultiPolygon, Polygon};

/// The rings of one parcel: a range into [`Shapes::ring_ends`]; its polygons are told apart by
/// `polygon_starts` (rings that begin a new polygon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeRef {
    pub rings: (u32, u32),
}

#[derive(Debug, Default)]
pub struct Shapes {
    coords: Vec<Coord<f64>>,
    /// End (exclusive) of each ring in `coords`; a ring starts where the one before ended.
    ring_ends: Vec<u32>,
    /// Whether each ring is the exterior of a new polygon.
    exterior: Vec<bool>,
    /// Edge bands of the large shapes (roads, rivers), by their first ring.
    banded: std::collections::HashMap<u32, Bands>,
}

/// Shapes with more edges than this get [`Bands`].
const BANDED_FROM: usize = 128;

/// A large shape's edges sorted into horizontal bands: a point test looks only at the edges of
/// its band (every edge that reaches the point's latitude is in it).
#[derive(Debug)]
struct Bands {
    min_y: f64,
    max_y: f64,
    height: f64,
    /// For each band, the edges that reach into it, as the index of their first coordinate.
    edges: Vec<Vec<u32>>,
}

impl Shapes {
    pub fn push(&mut self, geometry: &MultiPolygon<f64>) -> ShapeRef {
        let first = self.ring_ends.len() as u32;
        for polygon in &geometry.0 {
            for (i, ring) in std::iter::once(polygon.exterior()).chain(polygon.interiors()).enumerate() {
                self.coords.extend_from_slice(&ring.0);
                self.ring_ends.push(self.coords.len() as u32);
                self.exterior.push(i == 0);
            }
        }
        let shape = ShapeRef { rings: (first, self.ring_ends.len() as u32) };
        if self.edge_starts(shape).count() > BANDED_FROM {
            let bands = self.bands(shape);
            self.banded.insert(first, bands);
        }
        shape
    }

    /// The index of the first coordinate of every edge of the shape.
    fn edge_starts(&self, shape: ShapeRef) -> impl Iterator<Item = u32> + '_ {
        self.rings(shape).flat_map(move |r| {
            let start = if r == 0 { 0 } else { self.ring_ends[r - 1] };
            start..self.ring_ends[r].saturating_sub(1).max(start)
        })
    }

    fn bands(&self, shape: ShapeRef) -> Bands {
        let edges: Vec<u32> = self.edge_starts(shape).collect();
        let ys = || edges.iter().map(|i| self.coords[*i as usize].y);
        let min_y = ys().fold(f64::INFINITY, f64::min);
        let max_y = ys().fold(f64::NEG_INFINITY, f64::max);
        // About eight edges a band: a point test looks at a handful of edges however long the
        // shape (one band entry per edge and band it reaches: a few bytes an edge).
        let count = (edges.len() / 8).max(1);
        let height = ((max_y - min_y) / count as f64).max(f64::MIN_POSITIVE);
        let band_of = |y: f64| (((y - min_y) / height).max(0.0) as usize).min(count - 1);
        let mut bands = vec![Vec::new(); count];
        for i in edges {
            let (a, b) = (self.coords[i as usize], self.coords[i as usize + 1]);
            for band in &mut bands[band_of(a.y.min(b.y))..=band_of(a.y.max(b.y))] {
                band.push(i);
            }
        }
        Bands { min_y, max_y, height, edges: bands }
    }

    fn ring(&self, r: usize) -> &[Coord<f64>] {
        let start = if r == 0 { 0 } else { self.ring_ends[r - 1] as usize };
        &self.coords[start..self.ring_ends[r] as usize]
    }

    fn rings(&self, shape: ShapeRef) -> Range<usize> {
        shape.rings.0 as usize..shape.rings.1 as usize
    }

    /// Whether the parcel and the point intersect, boundary included (PostGIS `ST_Intersects`):
    /// a point on an edge shared by two parcels is in both. Robust orientation predicates, so a
    /// point exactly on an edge is found on it.
    pub fn intersects_point(&self, shape: ShapeRef, p: Coord<f64>) -> bool {
        // Even-odd over every ring of every polygon: parts are disjoint and holes lie in their
        // shell, so an odd count of crossings means inside exactly one part and none of its holes.
        let mut crossings = Crossings::default();
        if let Some(bands) = self.banded.get(&shape.rings.0) {
            if p.y < bands.min_y || p.y > bands.max_y {
                return false;
            }
            let band = (((p.y - bands.min_y) / bands.height) as usize).min(bands.edges.len() - 1);
            let edges = &bands.edges[band];
            for i in edges {
                let i = *i as usize;
                if crossings.edge(self.coords[i], self.coords[i + 1], p) {
                    return true;
                }
            }
            return crossings.inside;
        }
        for r in self.rings(shape) {
            for edge in self.ring(r).windows(2) {
                if crossings.edge(edge[0], edge[1], p) {
                    return true;
                }
            }
        }
        crossings.inside
    }

    /// Whether the parcel and the closed box intersect (PostGIS `ST_Intersects` with an
    /// envelope): a vertex in the box, the box in the parcel, or an edge crossing a side.
    pub fn intersects_rect(&self, shape: ShapeRef, rect: geo::Rect<f64>) -> bool {
        let (min, max) = (rect.min(), rect.max());
        let corners = [min, Coord { x: max.x, y: min.y }, max, Coord { x: min.x, y: max.y }];
        let sides =
            [(corners[0], corners[1]), (corners[1], corners[2]), (corners[2], corners[3]), (corners[3], corners[0])];
        // An edge that starts in the box, or crosses one of its sides. Every vertex starts an
        // edge, so this also finds a vertex in the box.
        let meets = |a: Coord<f64>, b: Coord<f64>| {
            if a.x >= min.x && a.x <= max.x && a.y >= min.y && a.y <= max.y {
                return true;
            }
            let (lo_x, hi_x) = (a.x.min(b.x), a.x.max(b.x));
            let (lo_y, hi_y) = (a.y.min(b.y), a.y.max(b.y));
            if hi_x < min.x || lo_x > max.x || hi_y < min.y || lo_y > max.y {
                return false;
            }
            let edge = geo::Line::new(a, b);
            sides.iter().any(|(c, d)| geo::Intersects::intersects(&edge, &geo::Line::new(*c, *d)))
        };
        let crossed = match self.banded.get(&shape.rings.0) {
            // Only the bands the box spans hold edges that can reach it.
            Some(bands) => {
                let band_of =
                    |y: f64| (((y - bands.min_y) / bands.height).max(0.0) as usize).min(bands.edges.len() - 1);
                max.y >= bands.min_y
                    && min.y <= bands.max_y
                    && bands.edges[band_of(min.y)..=band_of(max.y)]
                        .iter()
                        .flatten()
                        .any(|i| meets(self.coords[*i as usize], self.coords[*i as usize + 1]))
            }
            None => self.rings(shape).any(|r| self.ring(r).windows(2).any(|e| meets(e[0], e[1]))),
        };
        // Otherwise the box is wholly inside the parcel or wholly outside it.
        crossed || self.intersects_point(shape, min)
    }

    /// The rings of the parcel, as coordinate slices.
    pub fn ring_slices(&self, shape: ShapeRef) -> impl Iterator<Item = &[Coord<f64>]> {
        self.rings(shape).map(|r| self.ring(r))
    }

    /// Metres from the point to the parcel on the WGS84 spheroid: zero inside or on it, else as
    /// PostGIS measures a geography (see [`crate::distance`]).
    pub fn distance_m(&self, shape: ShapeRef, p: Coord<f64>) -> f64 {
        if self.intersects_point(shape, p) { 0.0 } else { crate::distance::to_boundary(p, self.ring_slices(shape)) }
    }

    /// The parcel as a geo geometry (for the rarer box and polygon tests).
    pub fn geometry(&self, shape: ShapeRef) -> MultiPolygon<f64> {
        let mut polygons: Vec<Polygon<f64>> = Vec::new();
        for r in self.rings(shape) {
            let ring = LineString(self.ring(r).to_vec());
            if self.exterior[r] {
                polygons.push(Polygon::new(ring, Vec::new()));
            } else if let Some(last) = polygons.last_mut() {
                last.interiors_push(ring);
            }
        }
        MultiPolygon(polygons)
    }

    pub fn coord_count(&self) -> usize {
        self.coords.len()
    }

    pub fn heap_bytes(&self) -> usize {
        self.coords.capacity() * std::mem::size_of::<Coord<f64>>()
            + self.ring_ends.capacity() * 4
            + self.exterior.capacity()
            + self.banded.values().map(|b| b.edges.iter().map(|e| 24 + e.capacity() * 4).sum::<usize>()).sum::<usize>()
    }
}

/// The crossing count of a ray from a point towards +x.
#[derive(Debug, Default)]
struct Crossings {
    inside: bool,
}

impl Crossings {
    /// Counts edge `ab`; true if the point lies on it.
    fn edge(&mut self, a: Coord<f64>, b: Coord<f64>, p: Coord<f64>) -> bool {
        if (a.y > p.y) != (b.y > p.y) {
            match RobustKernel::orient2d(a, b, p) {
                Orientation::Collinear => return true,
                // Left of an upward edge or right of a downward one: the ray crosses it.
                Orientation::CounterClockwise if b.y > a.y => self.inside = !self.inside,
                Orientation::Clockwise if a.y > b.y => self.inside = !self.inside,
                _ => {}
            }
            false
        } else {
            (a.y == p.y || b.y == p.y) && on_segment(a, b, p)
        }
    }
}

/// Whether `p` lies on the segment `ab` (exactly, by the robust predicate).
fn on_segment(a: Coord<f64>, b: Coord<f64>, p: Coord<f64>) -> bool {
    RobustKernel::orient2d(a, b, p) == Orientation::Collinear
        && p.x >= a.x.min(b.x)
        && p.x <= a.x.max(b.x)
        && p.y >= a.y.min(b.y)
        && p.y <= a.y.max(b.y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Intersects, Point, polygon};

    proptest::proptest! {
        /// A shape of many edges (banded) answers as geo does, on and off its boundary.
        #[test]
        fn banded_point_test_agrees_with_geo(
            radii in proptest::collection::vec(0.3f64..1.0, 150..400),
            x in -1.1f64..1.1, y in -1.1f64..1.1, vertex in 0usize..400, snap in proptest::bool::ANY,
        ) {
            let n = radii.len();
            let ring: Vec<(f64, f64)> = radii.iter().enumerate().map(|(i, r)| {
                let a = std::f64::consts::TAU * i as f64 / n as f64;
                (r * a.cos(), r * a.sin())
            }).collect();
            let hole = vec![(-0.1, -0.1), (0.1, -0.1), (0.1, 0.1), (-0.1, 0.1)];
            let g = MultiPolygon(vec![Polygon::new(LineString::from(ring.clone()), vec![LineString::from(hole)])]);
            let mut shapes = Shapes::default();
            let shape = shapes.push(&g);
            proptest::prop_assert!(shapes.banded.contains_key(&shape.rings.0));
            let p = if snap { let (x, y) = ring[vertex % n]; Coord { x, y } } else { Coord { x, y } };
            proptest::prop_assert_eq!(shapes.intersects_point(shape, p), g.intersects(&Point(p)));
            for half in [0.001, 0.05, 0.3, 3.0] {
                let rect = geo::Rect::new((p.x - half, p.y - half * 0.5), (p.x + half * 0.7, p.y + half));
                proptest::prop_assert_eq!(shapes.intersects_rect(shape, rect), g.intersects(&rect), "{:?}", rect);
            }
        }

        /// The same answer as geo's robust `intersects` for points anywhere around a parcel with
        /// a hole and a second part, including its vertices (exactly on the boundary).
        #[test]
        fn point_test_agrees_with_geo(x in -1.0f64..12.0, y in -1.0f64..12.0, vertex in 0usize..12, snap in proptest::bool::ANY) {
            let g = MultiPolygon(vec![
                polygon![
                    exterior: [(x: 0.0, y: 0.0), (x: 10.0, y: 0.5), (x: 9.5, y: 10.0), (x: 0.3, y: 9.0)],
                    interiors: [[(x: 4.0, y: 4.0), (x: 6.0, y: 4.0), (x: 6.0, y: 6.0), (x: 4.0, y: 6.0)]],
                ],
                polygon![(x: 10.5, y: 0.0), (x: 11.5, y: 0.0), (x: 11.5, y: 1.0)],
            ]);
            let mut shapes = Shapes::default();
            shapes.push(&MultiPolygon(vec![polygon![(x: 50.0, y: 50.0), (x: 51.0, y: 50.0), (x: 51.0, y: 51.0)]]));
            let shape = shapes.push(&g);
            let p = if snap {
                let all: Vec<Coord<f64>> = g.0.iter().flat_map(|p| p.exterior().0.iter().chain(p.interiors().iter().flat_map(|r| r.0.iter()))).copied().collect();
                all[vertex % all.len()]
            } else {
                Coord { x, y }
            };
            proptest::prop_assert_eq!(shapes.intersects_point(shape, p), g.intersects(&Point(p)));
            for half in [0.01, 0.3, 2.0, 20.0] {
                let rect = geo::Rect::new((p.x - half, p.y - half), (p.x + half * 0.5, p.y + half * 1.5));
                proptest::prop_assert_eq!(shapes.intersects_rect(shape, rect), g.intersects(&rect), "{:?}", rect);
            }
            proptest::prop_assert_eq!(shapes.geometry(shape), g);
        }
    }
}
