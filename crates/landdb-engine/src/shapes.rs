//! Parcel boundaries in a compact encoding, and the exact tests the queries make on them.
//!
//! A boundary on the storage grid ([`landdb_model::grid`], 10⁻⁸ degree) is kept as integer grid
//! units, each vertex as the difference from the one before in variable-length bytes: a typical
//! parcel edge of 10–30 m costs three bytes a coordinate instead of eight. Decoding gives back
//! the stored doubles bit for bit, so the tests below see exactly what PostGIS sees. A boundary
//! off the grid (a store written before snapping) is kept as plain doubles, still exact.
//!
//! One shape, byte by byte:
//! - a varint header: ring count `<< 2`, `| 1` if plain doubles, `| 2` if banded (see [`Bands`]);
//! - per ring, a varint: its vertex count without the closing vertex `<< 1`, `| 1` if it is the
//!   exterior of a new polygon; then its vertices: zigzag varint deltas of x then y from the
//!   vertex before (the first of the shape from zero), or two little-endian doubles each.

use geo::kernels::{Kernel, Orientation, RobustKernel};
use geo::{Coord, LineString, MultiPolygon, Polygon, Rect};
use landdb_model::grid;

use crate::codec::{fixed64, put_varint, unzigzag, varint, zigzag};

const RAW: u64 = 1;
const BANDED: u64 = 2;

/// Shapes with more edges than this get [`Bands`].
const BANDED_FROM: usize = 128;

/// Encodes the boundary at the end of `out`.
pub fn encode(geometry: &MultiPolygon<f64>, out: &mut Vec<u8>) {
    let rings: Vec<(bool, &[Coord<f64>])> = geometry
        .0
        .iter()
        .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()).enumerate())
        .map(|(i, ring)| (i == 0, open(&ring.0)))
        .collect();
    let raw = !grid::on_grid(geometry);
    let edges: usize = rings.iter().map(|(_, r)| r.len()).sum();
    let banded = edges > BANDED_FROM;
    put_varint(out, ((rings.len() as u64) << 2) | if raw { RAW } else { 0 } | if banded { BANDED } else { 0 });
    let mut prev = (0i64, 0i64);
    for (exterior, ring) in rings {
        put_varint(out, ((ring.len() as u64) << 1) | u64::from(exterior));
        for c in ring {
            if raw {
                out.extend_from_slice(&c.x.to_le_bytes());
                out.extend_from_slice(&c.y.to_le_bytes());
            } else {
                let k = (grid::units(c.x).unwrap_or_default(), grid::units(c.y).unwrap_or_default());
                put_varint(out, zigzag(k.0 - prev.0));
                put_varint(out, zigzag(k.1 - prev.1));
                prev = k;
            }
        }
    }
}

/// A ring without its closing vertex (which repeats the first).
fn open(ring: &[Coord<f64>]) -> &[Coord<f64>] {
    match ring {
        [first, .., last] if first == last => &ring[..ring.len() - 1],
        _ => ring,
    }
}

/// The vertices of one ring as they are decoded, the first repeated at the end.
struct RingVertices<'d, 'a> {
    decoder: &'d mut Decoder<'a>,
    left: usize,
    first: Option<Coord<f64>>,
    closed: bool,
}

impl Iterator for RingVertices<'_, '_> {
    type Item = Coord<f64>;

    fn next(&mut self) -> Option<Coord<f64>> {
        if self.left > 0 {
            self.left -= 1;
            let c = self.decoder.vertex();
            self.first.get_or_insert(c);
            Some(c)
        } else if !self.closed {
            self.closed = true;
            self.first
        } else {
            None
        }
    }
}

/// One encoded boundary, and its bands if it has them.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    bytes: &'a [u8],
    bands: Option<&'a Bands>,
}

/// Reads a shape's rings and vertices in order.
struct Decoder<'a> {
    bytes: &'a [u8],
    at: usize,
    raw: bool,
    rings: u64,
    prev: (i64, i64),
}

impl Decoder<'_> {
    /// The next ring: whether it begins a polygon, and its vertex count (closing one excluded).
    #[inline]
    fn ring(&mut self) -> Option<(bool, usize)> {
        if self.rings == 0 {
            return None;
        }
        self.rings -= 1;
        let v = varint(self.bytes, &mut self.at);
        Some((v & 1 == 1, (v >> 1) as usize))
    }

    /// The next vertex of a shape on the grid, in grid units.
    #[inline]
    fn units(&mut self) -> (i64, i64) {
        self.prev.0 += unzigzag(varint(self.bytes, &mut self.at));
        self.prev.1 += unzigzag(varint(self.bytes, &mut self.at));
        self.prev
    }

    #[inline]
    fn vertex(&mut self) -> Coord<f64> {
        if self.raw {
            let x = f64::from_bits(fixed64(self.bytes, &mut self.at));
            let y = f64::from_bits(fixed64(self.bytes, &mut self.at));
            Coord { x, y }
        } else {
            self.prev.0 += unzigzag(varint(self.bytes, &mut self.at));
            self.prev.1 += unzigzag(varint(self.bytes, &mut self.at));
            Coord { x: grid::degrees(self.prev.0), y: grid::degrees(self.prev.1) }
        }
    }
}

impl<'a> Shape<'a> {
    /// The shape encoded at the start of `bytes`, with `bands` if it was built with them.
    pub fn new(bytes: &'a [u8], bands: Option<&'a Bands>) -> Self {
        Shape { bytes, bands }
    }

    /// Whether the shape was encoded as banded (so its owner keeps [`Bands`] for it).
    pub fn is_banded(bytes: &[u8]) -> bool {
        varint(bytes, &mut 0) & BANDED != 0
    }

    fn decoder(&self) -> Decoder<'a> {
        let mut at = 0;
        let header = varint(self.bytes, &mut at);
        Decoder { bytes: self.bytes, at, raw: header & RAW != 0, rings: header >> 2, prev: (0, 0) }
    }

    /// Calls `f` with every edge, ring by ring, each vertex read by `vertex`; stops at the first
    /// edge for which it is true.
    #[inline]
    fn any_edge_by<V: Copy>(
        &self,
        mut vertex: impl FnMut(&mut Decoder<'a>) -> V,
        mut f: impl FnMut(V, V) -> bool,
    ) -> bool {
        let mut d = self.decoder();
        while let Some((_, n)) = d.ring() {
            if n == 0 {
                continue;
            }
            let first = vertex(&mut d);
            let mut a = first;
            for _ in 1..n {
                let b = vertex(&mut d);
                if f(a, b) {
                    return true;
                }
                a = b;
            }
            if f(a, first) {
                return true;
            }
        }
        false
    }

    /// Every edge as doubles (see [`Shape::any_edge_by`]).
    #[inline]
    fn any_edge(&self, f: impl FnMut(Coord<f64>, Coord<f64>) -> bool) -> bool {
        self.any_edge_by(Decoder::vertex, f)
    }

    /// Every edge in grid units, for a shape on the grid.
    #[inline]
    fn any_units_edge(&self, f: impl FnMut((i64, i64), (i64, i64)) -> bool) -> bool {
        self.any_edge_by(Decoder::units, f)
    }

    /// Calls `f` for each ring in order with whether it begins a polygon and its vertices (the
    /// ring closed), decoded as they are read: what a writer of the boundary needs, with nothing
    /// allocated.
    pub fn for_each_ring(&self, mut f: impl FnMut(bool, &mut dyn Iterator<Item = Coord<f64>>)) {
        let mut d = self.decoder();
        while let Some((exterior, n)) = d.ring() {
            let mut ring = RingVertices { decoder: &mut d, left: n, first: None, closed: n == 0 };
            f(exterior, &mut ring);
            // Whatever the caller left unread still has to be read past.
            ring.for_each(drop);
        }
    }

    /// For a shape on the grid: calls `f` for each ring with whether it begins a polygon and its
    /// vertices in grid units (closed), gathered in `buf`; false, calling nothing, for a shape
    /// off the grid. For writers that print coordinates from their units.
    pub fn for_each_grid_ring(&self, buf: &mut Vec<(i64, i64)>, mut f: impl FnMut(bool, &[(i64, i64)])) -> bool {
        let mut d = self.decoder();
        if d.raw {
            return false;
        }
        while let Some((exterior, n)) = d.ring() {
            buf.clear();
            buf.extend((0..n).map(|_| d.units()));
            if let Some(first) = buf.first().copied() {
                buf.push(first);
            }
            f(exterior, buf);
        }
        true
    }

    /// The rings, each closed, with whether it begins a polygon.
    pub fn rings(&self) -> Vec<(bool, Vec<Coord<f64>>)> {
        let mut d = self.decoder();
        let mut rings = Vec::new();
        while let Some((exterior, n)) = d.ring() {
            let mut ring: Vec<Coord<f64>> = (0..n).map(|_| d.vertex()).collect();
            if let Some(first) = ring.first().copied() {
                ring.push(first);
            }
            rings.push((exterior, ring));
        }
        rings
    }

    /// The number of bytes the shape takes.
    pub fn len(bytes: &[u8]) -> usize {
        let shape = Shape::new(bytes, None);
        let mut d = shape.decoder();
        while let Some((_, n)) = d.ring() {
            for _ in 0..n {
                d.vertex();
            }
        }
        d.at
    }

    /// The box around the shape; `None` without a vertex.
    pub fn bounds(&self) -> Option<Rect<f64>> {
        let mut d = self.decoder();
        let mut b: Option<(Coord<f64>, Coord<f64>)> = None;
        while let Some((_, n)) = d.ring() {
            for _ in 0..n {
                let c = d.vertex();
                b = Some(match b {
                    None => (c, c),
                    Some((lo, hi)) => {
                        (Coord { x: lo.x.min(c.x), y: lo.y.min(c.y) }, Coord { x: hi.x.max(c.x), y: hi.y.max(c.y) })
                    }
                });
            }
        }
        b.map(|(lo, hi)| Rect::new(lo, hi))
    }

    /// The boundary as a geo geometry.
    pub fn geometry(&self) -> MultiPolygon<f64> {
        let mut polygons: Vec<Polygon<f64>> = Vec::new();
        for (exterior, ring) in self.rings() {
            let ring = LineString(ring);
            if exterior || polygons.is_empty() {
                polygons.push(Polygon::new(ring, Vec::new()));
            } else if let Some(last) = polygons.last_mut() {
                last.interiors_push(ring);
            }
        }
        MultiPolygon(polygons)
    }

    /// Whether the parcel and the point intersect, boundary included (PostGIS `ST_Intersects`):
    /// a point on an edge shared by two parcels is in both. Robust orientation predicates, so a
    /// point exactly on an edge is found on it.
    pub fn intersects_point(&self, p: Coord<f64>) -> bool {
        self.intersects_probe(&Probe::new(p))
    }

    /// [`Shape::intersects_point`] for a point already placed on the grid (once for all the
    /// candidates of a query).
    #[inline]
    pub fn intersects_probe(&self, probe: &Probe) -> bool {
        // Even-odd over every ring of every polygon: parts are disjoint and holes lie in their
        // shell, so an odd count of crossings means inside exactly one part and none of its holes.
        if let Some(bands) = self.bands {
            return bands.intersects_probe(probe);
        }
        let mut crossings = Crossings::default();
        if self.decoder().raw {
            return self.any_edge(|a, b| crossings.edge(a, b, probe.p)) || crossings.inside;
        }
        // On the grid: most edges are decided on integers, without a double in sight.
        if self.any_units_edge(|a, b| probe.edge(&mut crossings, a, b)) {
            return true;
        }
        crossings.inside
    }

    /// Whether the parcel and the closed box intersect (PostGIS `ST_Intersects` with an
    /// envelope): a vertex in the box, the box in the parcel, or an edge crossing a side.
    pub fn intersects_rect(&self, rect: Rect<f64>) -> bool {
        let meets = edge_meets_rect(rect);
        let crossed = match self.bands {
            Some(bands) => bands.any_edge_in(rect.min().y, rect.max().y, meets),
            None if self.decoder().raw => self.any_edge(meets),
            None => {
                // On the grid: a vertex in the box, or an edge wholly beyond one side, is told
                // on integers; only the rest are decoded and tested exactly.
                let lo = (ceil_units(rect.min().x), ceil_units(rect.min().y));
                let hi = (floor_units(rect.max().x), floor_units(rect.max().y));
                let inside = |a: (i64, i64)| a.0 >= lo.0 && a.0 <= hi.0 && a.1 >= lo.1 && a.1 <= hi.1;
                let beyond = |a: (i64, i64), b: (i64, i64)| {
                    (a.0 < lo.0 && b.0 < lo.0)
                        || (a.0 > hi.0 && b.0 > hi.0)
                        || (a.1 < lo.1 && b.1 < lo.1)
                        || (a.1 > hi.1 && b.1 > hi.1)
                };
                self.any_units_edge(|a, b| inside(a) || (!beyond(a, b) && meets(Probe::coord(a), Probe::coord(b))))
            }
        };
        // Otherwise the box is wholly inside the parcel or wholly outside it.
        crossed || self.intersects_point(rect.min())
    }

    /// Metres from the point to the parcel on the WGS84 spheroid: zero inside or on it, else as
    /// PostGIS measures a geography (see [`crate::distance`]).
    pub fn distance_m(&self, p: Coord<f64>) -> f64 {
        if self.intersects_point(p) {
            0.0
        } else {
            crate::distance::to_boundary(p, self.rings().iter().map(|(_, r)| r.as_slice()))
        }
    }
}

/// Whether an edge starts in the box or crosses one of its sides. Every vertex starts an edge, so
/// over all edges this also finds a vertex in the box.
fn edge_meets_rect(rect: Rect<f64>) -> impl Fn(Coord<f64>, Coord<f64>) -> bool {
    let (min, max) = (rect.min(), rect.max());
    let corners = [min, Coord { x: max.x, y: min.y }, max, Coord { x: min.x, y: max.y }];
    let sides =
        [(corners[0], corners[1]), (corners[1], corners[2]), (corners[2], corners[3]), (corners[3], corners[0])];
    move |a: Coord<f64>, b: Coord<f64>| {
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
    }
}

/// A large shape's edges sorted into horizontal bands: a point test looks only at the edges of
/// its band (every edge that reaches the point's latitude is in it). Roads and rivers of
/// thousands of vertices are few, but random points fall on them often, so their vertices are
/// kept decoded here: grid units from the first vertex in 32 bits (still exact), the bands as one
/// list of edges with a start per band.
#[derive(Debug)]
pub struct Bands {
    min_y: f64,
    max_y: f64,
    height: f64,
    /// The rings' vertices one after another, each ring closed.
    vertices: Vertices,
    /// Band `b` holds the edges `edges[band_starts[b]..band_starts[b + 1]]`.
    band_starts: Vec<u32>,
    /// Edges, as the index of their first vertex.
    edges: Vec<u32>,
}

#[derive(Debug)]
enum Vertices {
    /// Grid units from `origin`.
    Grid { origin: (i64, i64), offsets: Vec<[i32; 2]> },
    /// A shape off the grid, or wider than 32 bits of units.
    Raw(Vec<Coord<f64>>),
}

impl Vertices {
    fn of(coords: Vec<Coord<f64>>) -> Self {
        let units: Option<Vec<(i64, i64)>> =
            coords.iter().map(|c| Some((grid::units(c.x)?, grid::units(c.y)?))).collect();
        let Some(units) = units else { return Vertices::Raw(coords) };
        let origin = units.first().copied().unwrap_or_default();
        let offsets: Option<Vec<[i32; 2]>> = units
            .iter()
            .map(|(x, y)| Some([i32::try_from(x - origin.0).ok()?, i32::try_from(y - origin.1).ok()?]))
            .collect();
        match offsets {
            Some(offsets) => Vertices::Grid { origin, offsets },
            None => Vertices::Raw(coords),
        }
    }

    #[inline]
    fn get(&self, i: u32) -> Coord<f64> {
        match self {
            Vertices::Grid { origin, offsets } => {
                let [dx, dy] = offsets[i as usize];
                Coord { x: grid::degrees(origin.0 + i64::from(dx)), y: grid::degrees(origin.1 + i64::from(dy)) }
            }
            Vertices::Raw(coords) => coords[i as usize],
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Vertices::Grid { offsets, .. } => offsets.capacity() * 8,
            Vertices::Raw(coords) => coords.capacity() * 16,
        }
    }
}

impl Bands {
    pub fn of(shape: &Shape<'_>) -> Self {
        let mut coords = Vec::new();
        let mut starts = Vec::new();
        for (_, ring) in shape.rings() {
            let first = coords.len() as u32;
            coords.extend_from_slice(&ring);
            starts.extend(first..(coords.len() as u32).saturating_sub(1).max(first));
        }
        let min_y = coords.iter().map(|c| c.y).fold(f64::INFINITY, f64::min);
        let max_y = coords.iter().map(|c| c.y).fold(f64::NEG_INFINITY, f64::max);
        // About eight edges a band: a point test looks at a handful of edges however long the
        // shape (one band entry per edge and band it reaches: a few bytes an edge).
        let count = (starts.len() / 8).max(1);
        let height = ((max_y - min_y) / count as f64).max(f64::MIN_POSITIVE);
        let band_of = |y: f64| (((y - min_y) / height).max(0.0) as usize).min(count - 1);
        let spans: Vec<(usize, usize)> = starts
            .iter()
            .map(|i| {
                let (a, b) = (coords[*i as usize], coords[*i as usize + 1]);
                (band_of(a.y.min(b.y)), band_of(a.y.max(b.y)))
            })
            .collect();
        // Count, then place: one list for all bands.
        let mut band_starts = vec![0u32; count + 1];
        for (lo, hi) in &spans {
            for b in *lo..=*hi {
                band_starts[b + 1] += 1;
            }
        }
        for b in 0..count {
            band_starts[b + 1] += band_starts[b];
        }
        let mut fill: Vec<u32> = band_starts[..count].to_vec();
        let mut edges = vec![0u32; band_starts[count] as usize];
        for (i, (lo, hi)) in starts.iter().zip(&spans) {
            for b in *lo..=*hi {
                edges[fill[b] as usize] = *i;
                fill[b] += 1;
            }
        }
        Bands { min_y, max_y, height, vertices: Vertices::of(coords), band_starts, edges }
    }

    fn band_of(&self, y: f64) -> usize {
        (((y - self.min_y) / self.height).max(0.0) as usize).min(self.band_starts.len() - 2)
    }

    /// The edges of bands `lo..=hi`.
    fn edges_of(&self, lo: usize, hi: usize) -> &[u32] {
        &self.edges[self.band_starts[lo] as usize..self.band_starts[hi + 1] as usize]
    }

    fn intersects_probe(&self, probe: &Probe) -> bool {
        let p = probe.p;
        if p.y < self.min_y || p.y > self.max_y {
            return false;
        }
        let mut crossings = Crossings::default();
        let band = self.band_of(p.y);
        let edges = self.edges_of(band, band);
        match &self.vertices {
            Vertices::Grid { origin, offsets } => {
                let units = |i: u32| {
                    let [dx, dy] = offsets[i as usize];
                    (origin.0 + i64::from(dx), origin.1 + i64::from(dy))
                };
                edges.iter().any(|i| probe.edge(&mut crossings, units(*i), units(*i + 1))) || crossings.inside
            }
            Vertices::Raw(coords) => {
                edges.iter().any(|i| crossings.edge(coords[*i as usize], coords[*i as usize + 1], p))
                    || crossings.inside
            }
        }
    }

    /// Whether `f` holds for an edge of a band between `lo` and `hi` (latitudes).
    fn any_edge_in(&self, lo: f64, hi: f64, f: impl Fn(Coord<f64>, Coord<f64>) -> bool) -> bool {
        hi >= self.min_y
            && lo <= self.max_y
            && self
                .edges_of(self.band_of(lo), self.band_of(hi))
                .iter()
                .any(|i| f(self.vertices.get(*i), self.vertices.get(*i + 1)))
    }

    pub fn heap_bytes(&self) -> usize {
        self.vertices.heap_bytes() + self.band_starts.capacity() * 4 + self.edges.capacity() * 4
    }
}

/// The last grid unit at or before `v`.
fn floor_units(v: f64) -> i64 {
    let mut k = (v * grid::UNITS_PER_DEGREE).floor().clamp(-9.0e15, 9.0e15) as i64;
    while grid::degrees(k) > v {
        k -= 1;
    }
    while grid::degrees(k + 1) <= v {
        k += 1;
    }
    k
}

/// The first grid unit at or after `v`.
fn ceil_units(v: f64) -> i64 {
    let k = floor_units(v);
    if grid::degrees(k) == v { k } else { k + 1 }
}

/// A query point placed among the grid lines: on each axis the last grid unit at or before it,
/// and whether it lies exactly on that unit. Comparing a vertex's units with these is the same
/// as comparing its coordinate with the point's (decoding is monotonic), so an edge wholly above,
/// below, left or right of the point needs no arithmetic on doubles at all.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    p: Coord<f64>,
    kx: i64,
    ky: i64,
    x_exact: bool,
    y_exact: bool,
}

impl Probe {
    pub fn new(p: Coord<f64>) -> Self {
        let (kx, ky) = (floor_units(p.x), floor_units(p.y));
        Probe { p, kx, ky, x_exact: grid::degrees(kx) == p.x, y_exact: grid::degrees(ky) == p.y }
    }

    fn coord(a: (i64, i64)) -> Coord<f64> {
        Coord { x: grid::degrees(a.0), y: grid::degrees(a.1) }
    }

    /// [`Crossings::edge`] for an edge in grid units: counts it, true if the point lies on it.
    #[inline]
    fn edge(&self, crossings: &mut Crossings, a: (i64, i64), b: (i64, i64)) -> bool {
        let (a_above, b_above) = (a.1 > self.ky, b.1 > self.ky);
        if a_above != b_above {
            let right = |x: i64| x > self.kx;
            let left = |x: i64| x < self.kx || (x == self.kx && !self.x_exact);
            if right(a.0) && right(b.0) {
                // The edge crosses the point's latitude east of it: the ray meets it.
                crossings.inside = !crossings.inside;
                return false;
            }
            if left(a.0) && left(b.0) {
                return false;
            }
            crossings.edge(Self::coord(a), Self::coord(b), self.p)
        } else {
            // Both ends on one side: the point can only be on it at an end's latitude.
            self.y_exact && (a.1 == self.ky || b.1 == self.ky) && on_segment(Self::coord(a), Self::coord(b), self.p)
        }
    }
}

/// The crossing count of a ray from a point towards +x.
#[derive(Debug, Default)]
struct Crossings {
    inside: bool,
}

impl Crossings {
    /// Counts edge `ab`; true if the point lies on it.
    #[inline]
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

    /// Encodes `g` and decodes it with its bands (when it has them), as a snapshot would.
    fn stored(g: &MultiPolygon<f64>) -> (Vec<u8>, Option<Bands>) {
        let mut bytes = vec![7u8; 3];
        encode(g, &mut bytes);
        let bytes = bytes.split_off(3);
        let bands = Shape::is_banded(&bytes).then(|| Bands::of(&Shape::new(&bytes, None)));
        (bytes, bands)
    }

    /// A ring of `n` vertices around (cx, cy), radii from `radii`, optionally on the grid.
    fn star(cx: f64, cy: f64, radii: &[f64], scale: f64, snap: bool) -> LineString<f64> {
        let n = radii.len();
        let s = |v: f64| if snap { grid::snap(v) } else { v };
        LineString::from(
            radii
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let a = std::f64::consts::TAU * i as f64 / n as f64;
                    (s(cx + scale * r * a.cos()), s(cy + scale * r * a.sin()))
                })
                .collect::<Vec<_>>(),
        )
    }

    proptest::proptest! {
        /// The compact encoding gives back every vertex bit for bit, on the grid (deltas) and off
        /// it (doubles), and says how long it is.
        #[test]
        fn encoding_round_trips(
            radii in proptest::collection::vec(0.2f64..1.0, 3..300),
            cx in 102.0f64..110.0, cy in 8.0f64..23.0, scale in 1e-5f64..1e-2, snap in proptest::bool::ANY,
            parts in 1usize..3,
        ) {
            let g = MultiPolygon((0..parts).map(|k| {
                let dx = k as f64 * 3.0 * scale;
                Polygon::new(star(cx + dx, cy, &radii, scale, snap), vec![star(cx + dx, cy, &[0.1, 0.1, 0.1, 0.1], scale, snap)])
            }).collect());
            let (bytes, _) = stored(&g);
            let shape = Shape::new(&bytes, None);
            proptest::prop_assert_eq!(shape.geometry(), g.clone());
            let mut visited = Vec::new();
            shape.for_each_ring(|exterior, vertices| visited.push((exterior, vertices.collect::<Vec<_>>())));
            proptest::prop_assert_eq!(&visited, &shape.rings());
            let mut units = Vec::new();
            let mut buf = Vec::new();
            let on_grid = shape.for_each_grid_ring(&mut buf, |exterior, ring| {
                units.push((exterior, ring.iter().map(|(x, y)| Coord { x: grid::degrees(*x), y: grid::degrees(*y) }).collect::<Vec<_>>()));
            });
            proptest::prop_assert_eq!(on_grid, snap);
            if snap {
                proptest::prop_assert_eq!(&units, &visited);
            }
            proptest::prop_assert_eq!(Shape::len(&bytes), bytes.len());
            proptest::prop_assert_eq!(Some(shape.bounds()), Some(geo::BoundingRect::bounding_rect(&g)));
            if snap {
                // Deltas of a few grid units are a few bytes, well under two doubles a vertex.
                proptest::prop_assert!(bytes.len() < 16 * geo::CoordsIter::coords_count(&g) / 2 + 16);
            }
        }

        /// On a coarse patch of the grid every kind of degenerate case comes up: points on edges
        /// between vertices, on the extension of an edge, level with a vertex, on a vertical
        /// edge. The integer shortcuts answer as geo's robust test does, plain and banded.
        #[test]
        fn grid_points_agree_with_geo(
            corners in proptest::collection::vec((0i64..12, 0i64..12), 3..9),
            px in -1i64..13, py in -1i64..13, many in proptest::bool::ANY,
        ) {
            let at = |k: (i64, i64)| (grid::degrees(10_820_000_000 + k.0), grid::degrees(1_604_000_000 + k.1));
            // A simple ring: corners sorted by angle around their centroid.
            let n = corners.len() as f64;
            let (cx, cy) = (corners.iter().map(|c| c.0 as f64).sum::<f64>() / n, corners.iter().map(|c| c.1 as f64).sum::<f64>() / n);
            let mut corners = corners;
            corners.sort_by(|a, b| {
                let ang = |c: &(i64, i64)| (c.1 as f64 - cy).atan2(c.0 as f64 - cx);
                ang(a).total_cmp(&ang(b)).then(a.cmp(b))
            });
            corners.dedup();
            proptest::prop_assume!(corners.len() >= 3);
            // Banded: the patch 40 times larger, each edge cut into 40 pieces on the grid.
            let (scale, pieces) = if many { (40, 40) } else { (1, 1) };
            let mut ring: Vec<(f64, f64)> = Vec::new();
            for (i, a) in corners.iter().enumerate() {
                let b = corners[(i + 1) % corners.len()];
                for j in 0..pieces {
                    let k = (scale * a.0 + (b.0 - a.0) * scale * j / pieces, scale * a.1 + (b.1 - a.1) * scale * j / pieces);
                    ring.push(at(k));
                }
            }
            let (px, py) = (px * scale, py * scale);
            let g = MultiPolygon(vec![Polygon::new(LineString::from(ring), vec![])]);
            let (bytes, bands) = stored(&g);
            proptest::prop_assert_eq!(bands.is_some(), many && corners.len() >= 4);
            let shape = Shape::new(&bytes, bands.as_ref());
            let (x, y) = at((px, py));
            let p = Coord { x, y };
            proptest::prop_assert_eq!(shape.intersects_point(p), g.intersects(&Point(p)));
            // Half a unit off, too.
            let q = Coord { x: x + 0.5e-8, y };
            proptest::prop_assert_eq!(shape.intersects_point(q), g.intersects(&Point(q)));
            // Boxes on the grid lines touch edges and corners exactly; boxes half a unit off
            // just miss or just reach.
            for (w, h) in [(0, 0), (1, 0), (0, 2), (1, 1), (3, 2), (7, 9)] {
                let (w, h) = (w * scale, h * scale);
                let rect = geo::Rect::new(at((px, py)), at((px + w, py + h)));
                proptest::prop_assert_eq!(shape.intersects_rect(rect), g.intersects(&rect), "{:?}", rect);
                let off = geo::Rect::new((x + 0.5e-8, y - 0.5e-8), (rect.max().x + 0.5e-8, rect.max().y - 0.5e-8));
                proptest::prop_assert_eq!(shape.intersects_rect(off), g.intersects(&off), "{:?}", off);
            }
        }

        /// A shape of many edges (banded) answers as geo does, on and off its boundary.
        #[test]
        fn banded_point_test_agrees_with_geo(
            radii in proptest::collection::vec(0.3f64..1.0, 150..400),
            x in -1.1f64..1.1, y in -1.1f64..1.1, vertex in 0usize..400, snap in proptest::bool::ANY,
        ) {
            let ring = star(0.0, 0.0, &radii, 1.0, snap);
            let hole = LineString::from(vec![(-0.1, -0.1), (0.1, -0.1), (0.1, 0.1), (-0.1, 0.1)]);
            let g = MultiPolygon(vec![Polygon::new(ring.clone(), vec![hole])]);
            let (bytes, bands) = stored(&g);
            proptest::prop_assert!(bands.is_some());
            let shape = Shape::new(&bytes, bands.as_ref());
            let p = if snap { ring.0[vertex % radii.len()] } else { Coord { x, y } };
            proptest::prop_assert_eq!(shape.intersects_point(p), g.intersects(&Point(p)));
            for half in [0.001, 0.05, 0.3, 3.0] {
                let rect = geo::Rect::new((p.x - half, p.y - half * 0.5), (p.x + half * 0.7, p.y + half));
                proptest::prop_assert_eq!(shape.intersects_rect(rect), g.intersects(&rect), "{:?}", rect);
            }
        }

        /// The same answer as geo's robust `intersects` for points anywhere around a parcel with
        /// a hole and a second part, including its vertices (exactly on the boundary), with the
        /// parcel on the grid or off it.
        #[test]
        fn point_test_agrees_with_geo(x in -1.0f64..12.0, y in -1.0f64..12.0, vertex in 0usize..12, snap in proptest::bool::ANY, at in 100.0f64..110.0) {
            let scale = 1e-4;
            let s = |v: f64| if snap { grid::snap(at + v * scale) } else { at + v * scale };
            let g = MultiPolygon(vec![
                polygon![
                    exterior: [(x: s(0.0), y: s(0.0)), (x: s(10.0), y: s(0.5)), (x: s(9.5), y: s(10.0)), (x: s(0.3), y: s(9.0))],
                    interiors: [[(x: s(4.0), y: s(4.0)), (x: s(6.0), y: s(4.0)), (x: s(6.0), y: s(6.0)), (x: s(4.0), y: s(6.0))]],
                ],
                polygon![(x: s(10.5), y: s(0.0)), (x: s(11.5), y: s(0.0)), (x: s(11.5), y: s(1.0))],
            ]);
            let (bytes, bands) = stored(&g);
            proptest::prop_assert!(bands.is_none());
            let shape = Shape::new(&bytes, None);
            let p = if snap {
                let all: Vec<Coord<f64>> = geo::CoordsIter::coords_iter(&g).collect();
                all[vertex % all.len()]
            } else {
                Coord { x: at + x * scale, y: at + y * scale }
            };
            proptest::prop_assert_eq!(shape.intersects_point(p), g.intersects(&Point(p)));
            for half in [0.01, 0.3, 2.0, 20.0] {
                let half = half * scale;
                let rect = geo::Rect::new((p.x - half, p.y - half), (p.x + half * 0.5, p.y + half * 1.5));
                proptest::prop_assert_eq!(shape.intersects_rect(rect), g.intersects(&rect), "{:?}", rect);
            }
            proptest::prop_assert_eq!(shape.geometry(), g);
        }
    }
}
