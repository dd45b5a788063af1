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
        ShapeRef { rings: (first, self.ring_ends.len() as u32) }
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
        let mut inside = false;
        for r in self.rings(shape) {
            for edge in self.ring(r).windows(2) {
                let (a, b) = (edge[0], edge[1]);
                if (a.y > p.y) != (b.y > p.y) {
                    match RobustKernel::orient2d(a, b, p) {
                        Orientation::Collinear => return true,
                        // Left of an upward edge or right of a downward one: the ray crosses it.
                        Orientation::CounterClockwise if b.y > a.y => inside = !inside,
                        Orientation::Clockwise if a.y > b.y => inside = !inside,
                        _ => {}
                    }
                } else if (a.y == p.y || b.y == p.y) && on_segment(a, b, p) {
                    return true;
                }
            }
        }
        inside
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
            proptest::prop_assert_eq!(shapes.geometry(shape), g);
        }
    }
}
