//! The national parcel identifier: a 12-character GeoHash of a WGS84 interior point of the parcel
//! (Circular 19/2026; format partly unconfirmed, see shared/domain/cadastre.md). 12 characters is a
//! cell of about 4 × 2 cm, so the ID is stable under re-survey noise below that.

use std::fmt;

use geo::{Coord, MultiPolygon, Point, Polygon};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NationalParcelId(String);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NationalIdError {
    #[error("national parcel ID {0:?} is not 12 GeoHash characters")]
    Malformed(String),
    #[error("interior point ({lon}, {lat}) is not a valid WGS84 position")]
    OutOfRange { lon: f64, lat: f64 },
}

/// The GeoHash alphabet, in the order of the five-bit values.
const GEOHASH_DIGITS: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";

impl NationalParcelId {
    pub const LEN: usize = 12;

    /// The ID of the parcel whose interior point (already in WGS84) is `point`.
    pub fn from_wgs84(point: Point<f64>) -> Result<Self, NationalIdError> {
        let (lon, lat) = (point.x(), point.y());
        geohash::encode(Coord { x: lon, y: lat }, Self::LEN)
            .map(Self)
            .map_err(|_| NationalIdError::OutOfRange { lon, lat })
    }

    pub fn parse(raw: &str) -> Result<Self, NationalIdError> {
        let id = raw.trim().to_ascii_lowercase();
        let valid = id.len() == Self::LEN && geohash::decode(&id).is_ok();
        if valid { Ok(Self(id)) } else { Err(NationalIdError::Malformed(raw.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ID in 60 bits (five a GeoHash character), for compact indexes; [`Self::from_bits`]
    /// gives it back.
    pub fn to_bits(&self) -> u64 {
        self.0.bytes().fold(0, |bits, c| {
            let digit = GEOHASH_DIGITS.iter().position(|d| *d == c).unwrap_or_default();
            (bits << 5) | digit as u64
        })
    }

    /// The ID whose [`Self::to_bits`] is `bits` (the low 60 bits are read).
    pub fn from_bits(bits: u64) -> Self {
        let id = (0..Self::LEN).rev().map(|i| char::from(GEOHASH_DIGITS[((bits >> (5 * i)) & 31) as usize])).collect();
        Self(id)
    }

    /// The centre of the ID's GeoHash cell (within about 2 cm of the interior point).
    pub fn position(&self) -> Point<f64> {
        geohash::decode(&self.0).map(|(c, _, _)| Point::from(c)).unwrap_or_else(|_| Point::new(0.0, 0.0))
    }
}

impl fmt::Display for NationalParcelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for NationalParcelId {
    type Error = NationalIdError;
    fn try_from(raw: String) -> Result<Self, NationalIdError> {
        Self::parse(&raw)
    }
}

impl From<NationalParcelId> for String {
    fn from(id: NationalParcelId) -> String {
        id.0
    }
}

/// The pole of inaccessibility of the parcel's largest polygon: a point well inside it, unlike a
/// centroid, which can fall outside an L- or U-shaped parcel. The search stops at 1/20 of the
/// polygon's shorter side: finer costs time (the work grows quickly as the tolerance shrinks
/// against a long road strip) and buys nothing, since any deterministic point well inside the
/// parcel serves as its identifier. `None` for an empty geometry or one with a coordinate that is
/// not a finite number.
pub fn interior_point(geometry: &MultiPolygon<f64>) -> Option<Point<f64>> {
    use geo::{Area, BoundingRect, CoordsIter};
    if geometry.coords_iter().any(|c| !c.x.is_finite() || !c.y.is_finite()) {
        return None;
    }
    let largest: &Polygon<f64> = geometry.0.iter().max_by(|a, b| a.unsigned_area().total_cmp(&b.unsigned_area()))?;
    let rect = largest.bounding_rect()?;
    let tolerance = (rect.width().min(rect.height()) / 20.0).max(f64::MIN_POSITIVE);
    pole_of_inaccessibility(largest, tolerance)
}

/// Squares the search starts with along the polygon's longer side, at most. It starts with squares
/// as wide as the shorter side, one per step along the longer: a sliver (or one hostile vertex far
/// away) would otherwise ask for a square per millimetre of a thousand kilometres. No parcel of the
/// Đà Nẵng set is more than 73 times longer than wide.
const FIRST_SQUARES_ALONG: f64 = 16_384.0;

/// Squares the search measures, at most, plus [`SEARCH_BUDGET_PER_VERTEX`] a vertex, so that its
/// time and memory are bounded by the polygon's size whatever its coordinates: past this the best
/// point found so far is taken (still a point of the search, and deterministic). The most any of
/// the 79,496 parcels of the Đà Nẵng set needs is 3,646; a road strip a thousand times longer than
/// wide needs some tens of thousands.
pub const SEARCH_BUDGET: usize = 65_536;
pub const SEARCH_BUDGET_PER_VERTEX: usize = 16;

/// Mapbox's polylabel search (the algorithm of the `polylabel` crate, which the tests use as the
/// oracle): cells over the bounding box in a priority queue by the best distance they could hold,
/// split until none can beat the best found by more than `tolerance`. Written out here because
/// the national ID needs it for every parcel of every upload: one pass over the edges per cell
/// with squared distances is about three times faster than the crate, which makes a
/// point-in-ring test and a `hypot` per edge. `None` for a polygon without area or with a
/// coordinate that is not finite. At most [`SEARCH_BUDGET`] cells (and a few a vertex) are measured.
pub fn pole_of_inaccessibility(polygon: &Polygon<f64>, tolerance: f64) -> Option<Point<f64>> {
    use geo::{Area, BoundingRect, Centroid};
    let area = polygon.signed_area();
    if area == 0.0 || !area.is_finite() || tolerance.is_nan() || tolerance <= 0.0 {
        return None;
    }
    let boundary = crate::planar::Boundary::new(polygon);
    let rect = polygon.bounding_rect()?;
    let size = rect.width().min(rect.height());
    if size == 0.0 {
        return Some(rect.min().into());
    }
    let size = size.max(rect.width().max(rect.height()) / FIRST_SQUARES_ALONG);
    let measured = std::cell::Cell::new(0usize);
    let vertices: usize = std::iter::once(polygon.exterior()).chain(polygon.interiors()).map(|r| r.0.len()).sum();
    let budget = SEARCH_BUDGET + SEARCH_BUDGET_PER_VERTEX * vertices;
    let cell = |c: Coord<f64>, half: f64| {
        measured.set(measured.get() + 1);
        let distance = boundary.signed_distance(c);
        Cell { c, half, distance, max: distance + half * std::f64::consts::SQRT_2 }
    };
    let centroid = cell(polygon.centroid()?.0, 0.0);
    let middle = cell(rect.center(), 0.0);
    let mut best = if middle.distance < centroid.distance { centroid } else { middle };
    let mut queue = std::collections::BinaryHeap::new();
    let half = size / 2.0;
    // Steps counted as well as measured: far from the origin a step can be lost to rounding.
    let steps = |extent: f64| (extent / size).ceil() as usize + 1;
    let mut x = rect.min().x;
    for _ in 0..steps(rect.width()) {
        if x >= rect.max().x {
            break;
        }
        let mut y = rect.min().y;
        for _ in 0..steps(rect.height()) {
            if y >= rect.max().y {
                break;
            }
            queue.push(cell(Coord { x: x + half, y: y + half }, half));
            y += size;
        }
        x += size;
    }
    while let Some(c) = queue.pop() {
        if c.distance > best.distance {
            best = c;
        }
        if c.max - best.distance <= tolerance {
            continue;
        }
        if measured.get() + 4 > budget {
            break;
        }
        let h = c.half / 2.0;
        for (dx, dy) in [(-h, -h), (h, -h), (-h, h), (h, h)] {
            queue.push(cell(Coord { x: c.c.x + dx, y: c.c.y + dy }, h));
        }
    }
    Some(best.c.into())
}

/// A square of the search: its centre, half its side, the centre's signed distance to the
/// boundary and the most any point of the square could have.
#[derive(Debug, Clone, Copy)]
struct Cell {
    c: Coord<f64>,
    half: f64,
    distance: f64,
    max: f64,
}

impl PartialEq for Cell {
    fn eq(&self, other: &Self) -> bool {
        self.max.total_cmp(&other.max).is_eq()
    }
}
impl Eq for Cell {}
impl PartialOrd for Cell {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cell {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.max.total_cmp(&other.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Contains, polygon};

    proptest::proptest! {
        /// Sixty bits hold an ID exactly.
        #[test]
        fn bits_round_trip(lon in -180.0f64..180.0, lat in -90.0f64..90.0) {
            let id = NationalParcelId::from_wgs84(Point::new(lon, lat)).expect("in range");
            proptest::prop_assert_eq!(NationalParcelId::from_bits(id.to_bits()), id);
        }
    }

    #[test]
    fn id_is_twelve_geohash_characters_and_decodes_near_the_point() {
        let p = Point::new(108.206, 16.0772);
        let id = NationalParcelId::from_wgs84(p).expect("valid point");
        assert_eq!(id.as_str().len(), 12);
        let back = id.position();
        assert!((back.x() - p.x()).abs() < 1e-6 && (back.y() - p.y()).abs() < 1e-6);
        assert_eq!(NationalParcelId::parse(&id.as_str().to_uppercase()), Ok(id));
        assert!(NationalParcelId::parse("w6ugq").is_err());
        assert!(NationalParcelId::parse("w6ugqaaaaaai").is_err(), "'i' is not in the GeoHash alphabet");
    }

    #[test]
    fn interior_point_of_a_u_shape_is_inside_it() {
        // A U-shaped parcel whose centroid lies in the notch.
        let u = polygon![
            (x: 0.0, y: 0.0), (x: 30.0, y: 0.0), (x: 30.0, y: 30.0), (x: 20.0, y: 30.0),
            (x: 20.0, y: 10.0), (x: 10.0, y: 10.0), (x: 10.0, y: 30.0), (x: 0.0, y: 30.0),
        ];
        let mp = MultiPolygon(vec![u.clone()]);
        let p = interior_point(&mp).expect("non-empty");
        assert!(u.contains(&p));
        assert!(interior_point(&MultiPolygon(vec![])).is_none());
    }

    /// One vertex of 1e308 (or 1e15, or a sliver a metre wide and a thousand kilometres long) once
    /// made the search ask for a square per step along the longer side: gigabytes, then an abort.
    #[test]
    fn far_vertices_and_slivers_are_searched_in_bounded_work() {
        for far in [1e15, 1e100, 1e308, f64::MAX] {
            let p = polygon![(x: 0.0, y: 0.0), (x: far, y: 0.0), (x: 10.0, y: 10.0), (x: 0.0, y: 10.0)];
            let started = std::time::Instant::now();
            let _ = interior_point(&MultiPolygon(vec![p]));
            assert!(started.elapsed().as_secs() < 5, "{far}: {:?}", started.elapsed());
        }
        let sliver = polygon![(x: 0.0, y: 0.0), (x: 1e9, y: 0.0), (x: 1e9, y: 1e-6), (x: 0.0, y: 1e-6)];
        let p = interior_point(&MultiPolygon(vec![sliver.clone()])).expect("has area");
        assert!(sliver.contains(&p), "{p:?}");
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let p = polygon![(x: 0.0, y: 0.0), (x: bad, y: 0.0), (x: 10.0, y: 10.0), (x: 0.0, y: 10.0)];
            assert_eq!(interior_point(&MultiPolygon(vec![p])), None, "{bad}");
        }
    }

    proptest::proptest! {
        /// Any f64 coordinates at all: an answer (or none) in bounded time, never a panic.
        #[test]
        fn arbitrary_coordinates_never_panic_or_run_away(
            coords in proptest::collection::vec((proptest::num::f64::ANY, proptest::num::f64::ANY), 3..12),
        ) {
            let ring: Vec<Coord<f64>> = coords.iter().map(|&(x, y)| Coord { x, y }).collect();
            let polygon = Polygon::new(geo::LineString::from(ring), vec![]);
            let started = std::time::Instant::now();
            let _ = interior_point(&MultiPolygon(vec![polygon]));
            proptest::prop_assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
        }
    }

    /// The distance from a point to a polygon's boundary, positive inside, as geo computes it.
    fn depth(polygon: &Polygon<f64>, p: Point<f64>) -> f64 {
        use geo::{Distance, Euclidean};
        let d = std::iter::once(polygon.exterior())
            .chain(polygon.interiors())
            .map(|r| Euclidean.distance(&p, r))
            .fold(f64::INFINITY, f64::min);
        if polygon.contains(&p) { d } else { -d }
    }

    proptest::proptest! {
        /// Against the `polylabel` crate on random star-shaped polygons (with a hole or not):
        /// the point is inside, and as deep as the crate's to within the tolerance.
        #[test]
        fn pole_matches_the_polylabel_crate(
            radii in proptest::collection::vec(0.2f64..1.0, 5..40),
            centre in (100.0f64..110.0, 8.0f64..23.0),
            scale in 1e-5f64..1e-2,
            hole in proptest::bool::ANY,
        ) {
            let n = radii.len();
            let ring: Vec<Coord<f64>> = radii.iter().enumerate().map(|(i, r)| {
                let a = std::f64::consts::TAU * i as f64 / n as f64;
                Coord { x: centre.0 + scale * r * a.cos(), y: centre.1 + scale * r * a.sin() }
            }).collect();
            let holes = if hole {
                let h = scale * 0.1;
                vec![geo::LineString::from(vec![
                    (centre.0 - h, centre.1 - h), (centre.0 + h, centre.1 - h), (centre.0 + h, centre.1 + h), (centre.0 - h, centre.1 + h),
                ])]
            } else { vec![] };
            let polygon = Polygon::new(geo::LineString::from(ring), holes);
            let tolerance = scale / 20.0;
            let ours = pole_of_inaccessibility(&polygon, tolerance).expect("has area");
            let crate_point = polylabel::polylabel(&polygon, &tolerance).expect("polylabel");
            proptest::prop_assert!(polygon.contains(&ours));
            proptest::prop_assert!(depth(&polygon, ours) >= depth(&polygon, crate_point) - tolerance);
        }
    }
}
