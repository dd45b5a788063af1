//! The cadastral fabric: a commune divided into blocks by roads, blocks into parcels that share
//! their edges exactly. Pure geometry in TM-3 metres; no I/O.
//!
//! A commune is a grid of block rows separated by road strips; in a row, blocks are separated by
//! cross roads; a block is split into a front and a back row of parcels by a wiggly line, and each
//! row into parcels by wiggly cross lines. Every split line is generated once and used by the
//! parcels on both sides of it, so neighbours share their edges vertex for vertex; a final pass
//! inserts every T-junction vertex into the edges it lies on, so the fabric is a true tessellation.

use std::collections::HashMap;

use geo::{Area, Coord, LineString, Polygon};
use rand::Rng;

/// How a commune looks: downtown lots or rice land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Urban,
    Rural,
}

impl Setting {
    /// (min, max) parcel frontage along the road, metres.
    fn frontage(self) -> (f64, f64) {
        match self {
            Self::Urban => (3.5, 9.0),
            Self::Rural => (15.0, 80.0),
        }
    }
    /// (min, max) block depth (both rows of parcels), metres.
    fn block_depth(self) -> (f64, f64) {
        match self {
            Self::Urban => (22.0, 50.0),
            Self::Rural => (80.0, 300.0),
        }
    }
    /// (min, max) block length along the road, metres.
    fn block_length(self) -> (f64, f64) {
        match self {
            Self::Urban => (60.0, 160.0),
            Self::Rural => (200.0, 600.0),
        }
    }
    fn road_width(self) -> (f64, f64) {
        match self {
            Self::Urban => (5.0, 14.0),
            Self::Rural => (4.0, 8.0),
        }
    }
}

/// What a piece of the fabric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    Parcel,
    Road,
    River,
}

/// One polygon of the fabric, in TM-3 metres, with the block it lies in (for map sheets).
#[derive(Debug, Clone)]
pub struct Piece {
    pub kind: PieceKind,
    pub block: usize,
    pub polygon: Polygon<f64>,
}

/// Rounds to the millimetre, as surveyors record coordinates, so shared vertices are identical.
fn mm(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn between<R: Rng>(rng: &mut R, (lo, hi): (f64, f64)) -> f64 {
    rng.gen_range(lo..hi)
}

/// A split line from `a` to `b` with `bends` intermediate vertices pushed sideways by up to
/// `wiggle` metres: the boundary two neighbours share.
fn split_line<R: Rng>(rng: &mut R, a: Coord<f64>, b: Coord<f64>, bends: usize, wiggle: f64) -> Vec<Coord<f64>> {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let len = dx.hypot(dy).max(1e-9);
    let (nx, ny) = (-dy / len, dx / len);
    let mut line = vec![a];
    for i in 1..=bends {
        let t = i as f64 / (bends + 1) as f64;
        let off = if wiggle > 0.0 { rng.gen_range(-wiggle..wiggle) } else { 0.0 };
        line.push(Coord { x: mm(a.x + dx * t + nx * off), y: mm(a.y + dy * t + ny * off) });
    }
    line.push(b);
    line
}

fn ring(points: Vec<Coord<f64>>) -> Polygon<f64> {
    let mut ls = LineString(points);
    ls.close();
    // Exterior counter-clockwise, as OGC and GeoJSON expect.
    use geo::orient::{Direction, Orient};
    Polygon::new(ls, vec![]).orient(Direction::Default)
}

/// Generates a commune of about `target_parcels` parcels with its south-west corner at `origin`.
pub fn commune<R: Rng>(rng: &mut R, origin: Coord<f64>, setting: Setting, target_parcels: usize) -> Vec<Piece> {
    let mean_frontage = (setting.frontage().0 + setting.frontage().1) / 2.0;
    let mean_block = (setting.block_length().0 + setting.block_length().1) / 2.0;
    let parcels_per_block = (2.0 * mean_block / mean_frontage).max(2.0);
    let blocks = (target_parcels as f64 / parcels_per_block).ceil().max(1.0) as usize;
    let blocks_per_row = (blocks as f64).sqrt().ceil() as usize;
    let rows = blocks.div_ceil(blocks_per_row);
    // The commune is as wide as its widest row; every row has the same width so roads line up.
    let width = blocks_per_row as f64 * (mean_block + setting.road_width().1);

    let mut pieces = Vec::new();
    let mut parcels = 0;
    let mut y = origin.y;
    let mut block = 0;
    for row in 0..rows {
        let depth = mm(between(rng, setting.block_depth()));
        // Rural communes have a river across them half-way up instead of one road.
        let river = setting == Setting::Rural && row == rows / 2 && rows > 1;
        let road = if river { mm(rng.gen_range(20.0..45.0)) } else { mm(between(rng, setting.road_width())) };
        let (y0, y1) = (mm(y), mm(y + depth));
        // Block boundaries along the row: cross roads between them.
        let mut x = origin.x;
        let x_end = origin.x + width;
        while x < x_end - 1.0 && parcels < target_parcels {
            let len = between(rng, setting.block_length()).min(x_end - x);
            let (x0, x1) = (mm(x), mm(x + len));
            let new = block_parcels(rng, block, setting, x0, x1, y0, y1);
            parcels += new.len();
            pieces.extend(new);
            let cross = mm(between(rng, setting.road_width()));
            if x1 + cross < x_end {
                pieces.push(Piece {
                    kind: PieceKind::Road,
                    block,
                    polygon: ring(vec![
                        Coord { x: x1, y: y0 },
                        Coord { x: mm(x1 + cross), y: y0 },
                        Coord { x: mm(x1 + cross), y: y1 },
                        Coord { x: x1, y: y1 },
                    ]),
                });
            }
            x = x1 + cross;
            block += 1;
        }
        // The road (or river) strip above the row, as long as the row.
        let x_last = mm(x.min(x_end));
        pieces.push(Piece {
            kind: if river { PieceKind::River } else { PieceKind::Road },
            block: block.saturating_sub(1),
            polygon: ring(vec![
                Coord { x: mm(origin.x), y: y1 },
                Coord { x: x_last, y: y1 },
                Coord { x: x_last, y: mm(y1 + road) },
                Coord { x: mm(origin.x), y: mm(y1 + road) },
            ]),
        });
        y = y1 + road;
        if parcels >= target_parcels {
            break;
        }
    }
    insert_t_junctions(&mut pieces);
    pieces
}

/// Splits one block into a front and a back row of parcels.
fn block_parcels<R: Rng>(
    rng: &mut R,
    block: usize,
    setting: Setting,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
) -> Vec<Piece> {
    let wiggle = match setting {
        Setting::Urban => 0.4,
        Setting::Rural => 3.0,
    };
    let y_mid = mm(y0 + (y1 - y0) * rng.gen_range(0.4..0.6));
    let left_mid = Coord { x: x0, y: y_mid };
    let right_mid = Coord { x: x1, y: y_mid };
    let bends = rng.gen_range(0..4);
    let middle = split_line(rng, left_mid, right_mid, bends, wiggle / 2.0);
    let mut pieces = Vec::new();
    // Front row (south) faces the road below; back row (north) the road above.
    for edge_y in [y0, y1] {
        // Cut positions along the outer edge and along the middle line.
        let mut cuts = vec![x0];
        let mut x = x0;
        loop {
            x += between(rng, setting.frontage());
            if x >= x1 - setting.frontage().0 {
                break;
            }
            cuts.push(mm(x));
        }
        cuts.push(x1);
        // Each cut is a line from the outer edge to the middle line; the point where it meets the
        // middle line must be a vertex of the middle line too, which insert_t_junctions ensures.
        let mut lines: Vec<Vec<Coord<f64>>> = Vec::new();
        for (i, &cx) in cuts.iter().enumerate() {
            let outer = Coord { x: cx, y: edge_y };
            let inner = Coord { x: cx, y: middle_y_at(&middle, cx) };
            let bends = if i == 0 || i == cuts.len() - 1 { 0 } else { rng.gen_range(0..3) };
            let w = if i == 0 || i == cuts.len() - 1 { 0.0 } else { wiggle / 4.0 };
            lines.push(split_line(rng, outer, inner, bends, w));
        }
        for pair in lines.windows(2) {
            let (left, right) = (&pair[0], &pair[1]);
            let (ix0, ix1) = (left[left.len() - 1].x, right[right.len() - 1].x);
            // Polygon: left line outward→inward, the middle line between, right line inward→outward.
            let mut pts: Vec<Coord<f64>> = left.clone();
            pts.extend(middle.iter().filter(|c| c.x > ix0 && c.x < ix1));
            pts.extend(right.iter().rev());
            pieces.push(Piece { kind: PieceKind::Parcel, block, polygon: ring(pts) });
        }
    }
    pieces
}

/// The y of the middle line at `x` (it is a function of x by construction, wiggles aside).
fn middle_y_at(middle: &[Coord<f64>], x: f64) -> f64 {
    for seg in middle.windows(2) {
        let (a, b) = (seg[0], seg[1]);
        if (a.x <= x && x <= b.x) || (b.x <= x && x <= a.x) {
            let t = if (b.x - a.x).abs() < 1e-12 { 0.0 } else { (x - a.x) / (b.x - a.x) };
            return mm(a.y + (b.y - a.y) * t);
        }
    }
    middle.last().map_or(0.0, |c| c.y)
}

/// Inserts into every edge the fabric's vertices that lie on it, so neighbours share vertices
/// exactly (no T-junctions).
pub fn insert_t_junctions(pieces: &mut [Piece]) {
    const CELL: f64 = 25.0;
    const EPS: f64 = 0.0015;
    let key = |c: Coord<f64>| ((c.x / CELL).floor() as i64, (c.y / CELL).floor() as i64);
    let mut grid: HashMap<(i64, i64), Vec<Coord<f64>>> = HashMap::new();
    for piece in pieces.iter() {
        for c in piece.polygon.exterior().coords() {
            grid.entry(key(*c)).or_default().push(*c);
        }
    }
    for piece in pieces.iter_mut() {
        let coords = &piece.polygon.exterior().0;
        let mut out: Vec<Coord<f64>> = Vec::with_capacity(coords.len() * 2);
        for seg in coords.windows(2) {
            let (a, b) = (seg[0], seg[1]);
            out.push(a);
            let (kx0, ky0) = key(Coord { x: a.x.min(b.x), y: a.y.min(b.y) });
            let (kx1, ky1) = key(Coord { x: a.x.max(b.x), y: a.y.max(b.y) });
            let (dx, dy) = (b.x - a.x, b.y - a.y);
            let len2 = dx * dx + dy * dy;
            let mut on_edge: Vec<(f64, Coord<f64>)> = Vec::new();
            for gx in kx0..=kx1 {
                for gy in ky0..=ky1 {
                    for &c in grid.get(&(gx, gy)).map(Vec::as_slice).unwrap_or(&[]) {
                        if c == a || c == b || len2 == 0.0 {
                            continue;
                        }
                        let t = ((c.x - a.x) * dx + (c.y - a.y) * dy) / len2;
                        if t <= 0.0 || t >= 1.0 {
                            continue;
                        }
                        let dist = ((c.x - a.x) * dy - (c.y - a.y) * dx).abs() / len2.sqrt();
                        if dist < EPS && !on_edge.iter().any(|(_, o)| *o == c) {
                            on_edge.push((t, c));
                        }
                    }
                }
            }
            on_edge.sort_by(|x, y| x.0.total_cmp(&y.0));
            out.extend(on_edge.into_iter().map(|(_, c)| c));
        }
        if let Some(first) = coords.first() {
            out.push(*first);
        }
        piece.polygon = Polygon::new(LineString(out), vec![]);
    }
}

/// Planar area in m² (in the TM-3 plane, as a surveyor's software computes it).
pub fn plane_area(p: &Polygon<f64>) -> f64 {
    p.unsigned_area()
}
