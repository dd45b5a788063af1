//! Every current parcel at one feed position, in a compact immutable form.
//!
//! Per parcel the snapshot holds (figures for a typical parcel of ten vertices):
//! - its version, in a column sorted by version, which is also the version index (8 bytes);
//! - where its bytes start in one arena (8 bytes); the bytes are its boundary ([`shapes`],
//!   about 60) then its attributes: commune, sheet and parcel number, national ID in 60 bits,
//!   area, land-use codes and address, texts interned once per snapshot (about 25);
//! - its box in an rstar R-tree, in single precision relative to the snapshot's centre and rounded
//!   outwards, so the tree never misses a parcel (about 45 with the tree's nodes);
//! - its place in two sorted indexes: by natural key (which also groups communes) and by
//!   national ID (4 bytes each).

use std::collections::HashMap;

use geo::{Coord, Intersects, MultiPolygon, Polygon, Rect};
use landdb_model::{CommuneCode, FeedPosition, LandUseCode, NationalParcelId, ParcelKey, VersionId};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, Envelope as _, PointDistance, RTree, RTreeObject};

use crate::ParcelRecord;
use crate::codec::{Texts, TextsBuilder, find_text_or_number, fixed64, put_varint, text_of, text_or_number, varint};
use crate::shapes::{self, Bands, Shape};

/// A parcel's place in a snapshot's columns.
pub(crate) type Slot = u32;

/// Node sizes of the R-tree. Wider nodes than rstar's default (6) make a shallower tree: a point
/// lookup visits fewer levels, and the boxes of one node sit together in memory.
#[derive(Debug)]
pub struct TreeParams;

impl rstar::RTreeParams for TreeParams {
    const MIN_SIZE: usize = 6;
    const MAX_SIZE: usize = 16;
    const REINSERTION_COUNT: usize = 4;
    type DefaultInsertionStrategy = rstar::RStarInsertionStrategy;
}

/// A parcel's box in the tree, in the snapshot's [`Frame`], with its slot and where its bytes
/// start: a candidate's boundary is read without going through the columns. (A tree node is as
/// large as an inner node's box and child list, 40 bytes, so the start costs nothing.)
type Entry = GeomWithData<Rectangle<[f32; 2]>, Leaf>;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Leaf {
    slot: Slot,
    /// Index of the shape's bands in [`Snapshot::bands`], or [`NO_BANDS`].
    bands: u32,
    start: u64,
}

const NO_BANDS: u32 = u32::MAX;

/// Single-precision coordinates relative to a centre: a box of Vietnam is at most about eight
/// degrees from it, where a float step is under 10 cm. Boxes are rounded outwards and query points
/// to the nearest float; both roundings keep order, so a box holding a point still holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Frame {
    origin: Coord<f64>,
}

/// How far (degrees) a point can move when brought into a [`Frame`]: half a float step at 180°.
const FRAME_SLACK: f64 = 1e-5;

impl Frame {
    fn around(extent: Option<Rect<f64>>) -> Self {
        let c = extent.map_or(Coord { x: 0.0, y: 0.0 }, |e| e.center());
        Frame { origin: Coord { x: c.x.round(), y: c.y.round() } }
    }

    fn point(&self, lon: f64, lat: f64) -> [f32; 2] {
        [(lon - self.origin.x) as f32, (lat - self.origin.y) as f32]
    }

    fn down(v: f64) -> f32 {
        let f = v as f32;
        if f64::from(f) > v { f.next_down() } else { f }
    }

    fn up(v: f64) -> f32 {
        let f = v as f32;
        if f64::from(f) < v { f.next_up() } else { f }
    }

    /// The smallest frame box holding `rect`.
    fn outward(&self, rect: Rect<f64>) -> AABB<[f32; 2]> {
        let (min, max) = (rect.min(), rect.max());
        AABB::from_corners(
            [Self::down(min.x - self.origin.x), Self::down(min.y - self.origin.y)],
            [Self::up(max.x - self.origin.x), Self::up(max.y - self.origin.y)],
        )
    }

    /// The largest frame box inside `rect` (a box inside it is inside `rect`).
    fn inward(&self, rect: Rect<f64>) -> AABB<[f32; 2]> {
        let (min, max) = (rect.min(), rect.max());
        AABB::from_corners(
            [Self::up(min.x - self.origin.x), Self::up(min.y - self.origin.y)],
            [Self::down(max.x - self.origin.x), Self::down(max.y - self.origin.y)],
        )
    }
}

/// Half-sides in degrees (longitude, latitude) of a box that holds every point within `metres`
/// of a point at latitude `lat`, with room to spare.
fn degrees_around(lat: f64, metres: f64) -> (f64, f64) {
    let dlat = metres / 110_000.0;
    let dlon = metres / (110_000.0 * (lat.abs() + dlat + 1.0).min(89.0).to_radians().cos());
    (dlon, dlat)
}

/// A parcel of a snapshot: what the queries return. Attributes are decoded when asked for.
#[derive(Clone, Copy)]
pub struct Parcel<'a> {
    snapshot: &'a Snapshot,
    slot: Slot,
}

impl PartialEq for Parcel<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.snapshot, other.snapshot) && self.slot == other.slot
    }
}

impl std::fmt::Debug for Parcel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parcel").field("version", &self.version()).field("key", &self.key()).finish()
    }
}

/// A parcel's attributes as stored: the positions of the variable parts are found by reading.
struct Attributes {
    commune: u32,
    sheet: u64,
    number: u64,
    national_id: u64,
    area_m2: f64,
    /// Where the land-use codes begin.
    rest: usize,
}

impl<'a> Parcel<'a> {
    pub fn version(&self) -> VersionId {
        VersionId(self.snapshot.versions[self.slot as usize])
    }

    fn attributes(&self) -> Attributes {
        let s = self.snapshot;
        let bytes = s.record(self.slot);
        let mut at = 0;
        let shape_len = varint(bytes, &mut at) as usize;
        at += shape_len;
        let commune = varint(bytes, &mut at) as u32;
        let sheet = varint(bytes, &mut at);
        let number = varint(bytes, &mut at);
        let national_id = fixed64(bytes, &mut at);
        let area_m2 = f64::from_bits(fixed64(bytes, &mut at));
        Attributes { commune, sheet, number, national_id, area_m2, rest: at }
    }

    /// Whether the parcel has an address (personal data): [`Parcel::address`] without making it.
    pub fn has_address(&self) -> bool {
        self.address_parts().2 > 0
    }

    /// The record, where its address parts begin, and how many there are (with one more: 0 for
    /// none).
    fn address_parts(&self) -> (&'a [u8], usize, u64) {
        let bytes = self.snapshot.record(self.slot);
        let mut at = self.attributes().rest;
        let uses = varint(bytes, &mut at);
        for _ in 0..uses {
            varint(bytes, &mut at);
        }
        let parts = varint(bytes, &mut at);
        (bytes, at, parts)
    }

    pub fn commune(&self) -> &'a CommuneCode {
        &self.snapshot.communes[self.attributes().commune as usize]
    }

    pub fn key(&self) -> ParcelKey {
        let a = self.attributes();
        let texts = &self.snapshot.texts;
        ParcelKey {
            commune: self.snapshot.communes[a.commune as usize].clone(),
            sheet: text_of(texts, a.sheet),
            number: text_of(texts, a.number),
        }
    }

    pub fn national_id(&self) -> NationalParcelId {
        NationalParcelId::from_bits(self.attributes().national_id)
    }

    /// Area of the boundary on the spheroid, m².
    pub fn area_m2(&self) -> f64 {
        self.attributes().area_m2
    }

    pub fn land_use(&self) -> Vec<LandUseCode> {
        let bytes = self.snapshot.record(self.slot);
        let mut at = self.attributes().rest;
        let n = varint(bytes, &mut at);
        (0..n).filter_map(|_| self.snapshot.land_uses.get(varint(bytes, &mut at) as usize).cloned()).collect()
    }

    /// Whether the parcel's land use includes one of `codes`.
    pub fn has_land_use(&self, codes: &[LandUseCode]) -> bool {
        let bytes = self.snapshot.record(self.slot);
        let mut at = self.attributes().rest;
        let n = varint(bytes, &mut at);
        (0..n).any(|_| self.snapshot.land_uses.get(varint(bytes, &mut at) as usize).is_some_and(|c| codes.contains(c)))
    }

    pub fn address(&self) -> Option<String> {
        let (bytes, mut at, parts) = self.address_parts();
        (parts > 0).then(|| {
            let parts: Vec<&str> = (1..parts).map(|_| self.snapshot.texts.get(varint(bytes, &mut at) as u32)).collect();
            parts.join(ADDRESS_SEPARATOR)
        })
    }

    /// The box around the parcel's boundary (decoded, nothing allocated).
    pub fn bounds(&self) -> Option<Rect<f64>> {
        self.snapshot.shape(self.slot).bounds()
    }

    /// Whether the parcel meets the box, boundary included (the test [`Snapshot::in_box`] makes).
    pub fn meets_box(&self, rect: Rect<f64>) -> bool {
        self.snapshot.shape(self.slot).intersects_rect(rect)
    }

    /// The parcel's boundary.
    pub fn geometry(&self) -> MultiPolygon<f64> {
        self.snapshot.shape(self.slot).geometry()
    }

    /// The boundary ring by ring, decoded as it is read (see [`Shape::for_each_ring`]).
    pub fn for_each_ring(&self, f: impl FnMut(bool, &mut dyn Iterator<Item = Coord<f64>>)) {
        self.snapshot.shape(self.slot).for_each_ring(f);
    }

    /// The boundary ring by ring in grid units, if it is on the grid (see
    /// [`Shape::for_each_grid_ring`]).
    pub fn for_each_grid_ring(&self, buf: &mut Vec<(i64, i64)>, f: impl FnMut(bool, &[(i64, i64)])) -> bool {
        self.snapshot.shape(self.slot).for_each_grid_ring(buf, f)
    }

    /// Metres from the point (longitude, latitude) to the parcel, as PostGIS measures a geography.
    pub fn distance_m(&self, lon: f64, lat: f64) -> f64 {
        self.snapshot.shape(self.slot).distance_m(Coord { x: lon, y: lat })
    }

    /// Everything the snapshot keeps of the parcel.
    pub fn record(&self) -> ParcelRecord {
        ParcelRecord {
            version: self.version(),
            key: self.key(),
            national_id: self.national_id(),
            land_use: self.land_use(),
            area_m2: self.area_m2(),
            address: self.address(),
            geometry: self.geometry(),
        }
    }

    pub(crate) fn is_in(&self, snapshot: &Snapshot) -> bool {
        std::ptr::eq(self.snapshot, snapshot)
    }
}

/// Addresses are interned part by part ("Số 12 Trần Phú", "Phường Hải Châu", "Đà Nẵng"): the
/// street, commune and province parts repeat across thousands of parcels.
const ADDRESS_SEPARATOR: &str = ", ";

/// Every current parcel at one feed position.
#[derive(Debug)]
pub struct Snapshot {
    pub(crate) versions: Vec<i64>,
    pub(crate) starts: Vec<u64>,
    pub(crate) records: Vec<u8>,
    pub(crate) texts: Texts,
    pub(crate) communes: Vec<CommuneCode>,
    pub(crate) land_uses: Vec<LandUseCode>,
    pub(crate) position: FeedPosition,
    /// The bands of the large shapes, by slot.
    bands: Vec<(Slot, Bands)>,
    frame: Frame,
    extent: Option<Rect<f64>>,
    tree: RTree<Entry, TreeParams>,
    /// Slots in the order of their keys (commune number, sheet code, parcel number code).
    by_key: Vec<Slot>,
    /// Slots in the order of their national IDs.
    by_national_id: Vec<Slot>,
}

/// Builds a [`Snapshot`] from parcels in any order.
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    versions: Vec<i64>,
    starts: Vec<u64>,
    records: Vec<u8>,
    texts: TextsBuilder,
    communes: Vec<CommuneCode>,
    commune_numbers: HashMap<CommuneCode, u32>,
    land_uses: Vec<LandUseCode>,
    land_use_numbers: HashMap<LandUseCode, u32>,
}

impl SnapshotBuilder {
    pub fn push(&mut self, parcel: &ParcelRecord) {
        self.versions.push(parcel.version.0);
        self.starts.push(self.records.len() as u64);
        let mut shape = Vec::with_capacity(64);
        shapes::encode(&parcel.geometry, &mut shape);
        let out = &mut self.records;
        put_varint(out, shape.len() as u64);
        out.extend_from_slice(&shape);
        let commune = number_of(&mut self.communes, &mut self.commune_numbers, &parcel.key.commune);
        put_varint(out, u64::from(commune));
        put_varint(out, text_or_number(&mut self.texts, &parcel.key.sheet));
        put_varint(out, text_or_number(&mut self.texts, &parcel.key.number));
        out.extend_from_slice(&parcel.national_id.to_bits().to_le_bytes());
        out.extend_from_slice(&parcel.area_m2.to_le_bytes());
        put_varint(out, parcel.land_use.len() as u64);
        for code in &parcel.land_use {
            let n = number_of(&mut self.land_uses, &mut self.land_use_numbers, code);
            put_varint(out, u64::from(n));
        }
        match &parcel.address {
            None => put_varint(out, 0),
            Some(address) => {
                let parts: Vec<&str> = address.split(ADDRESS_SEPARATOR).collect();
                put_varint(out, parts.len() as u64 + 1);
                for part in parts {
                    put_varint(out, u64::from(self.texts.intern(part)));
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.versions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    pub fn finish(self, position: FeedPosition) -> Snapshot {
        Snapshot::from_columns(
            self.versions,
            self.starts,
            self.records,
            self.texts.finish(),
            self.communes,
            self.land_uses,
            position,
        )
    }
}

/// The number of `value` in `table`, adding it if new.
fn number_of<T: Clone + Eq + std::hash::Hash>(table: &mut Vec<T>, numbers: &mut HashMap<T, u32>, value: &T) -> u32 {
    *numbers.entry(value.clone()).or_insert_with(|| {
        table.push(value.clone());
        (table.len() - 1) as u32
    })
}

impl Snapshot {
    /// A snapshot of `parcels` (current ones) at feed `position`.
    pub fn build(parcels: impl IntoIterator<Item = ParcelRecord>, position: FeedPosition) -> Self {
        let mut builder = SnapshotBuilder::default();
        for p in parcels {
            builder.push(&p);
        }
        builder.finish(position)
    }

    /// A snapshot from its stored columns (as built, or as read from a file): sorts the parcels
    /// by version and builds the tree and the indexes.
    pub(crate) fn from_columns(
        versions: Vec<i64>,
        starts: Vec<u64>,
        records: Vec<u8>,
        texts: Texts,
        communes: Vec<CommuneCode>,
        land_uses: Vec<LandUseCode>,
        position: FeedPosition,
    ) -> Self {
        let mut records = records;
        records.shrink_to_fit();
        let mut order: Vec<(i64, u64)> = versions.into_iter().zip(starts).collect();
        if !order.is_sorted() {
            order.sort_unstable();
        }
        let (versions, starts): (Vec<i64>, Vec<u64>) = order.into_iter().unzip();
        let mut s = Snapshot {
            versions,
            starts,
            records,
            texts,
            communes,
            land_uses,
            position,
            bands: Vec::new(),
            frame: Frame::around(None),
            extent: None,
            tree: RTree::new_with_params(),
            by_key: Vec::new(),
            by_national_id: Vec::new(),
        };
        let mut bounds = Vec::with_capacity(s.versions.len());
        let mut extent: Option<Rect<f64>> = None;
        for slot in 0..s.versions.len() as Slot {
            let bytes = s.shape_bytes(slot);
            let b = Shape::new(bytes, None).bounds();
            if Shape::is_banded(bytes) {
                let bands = Bands::of(&Shape::new(bytes, None));
                s.bands.push((slot, bands));
            }
            if let Some(b) = b {
                extent = Some(extent.map_or(b, |e| {
                    Rect::new(
                        (e.min().x.min(b.min().x), e.min().y.min(b.min().y)),
                        (e.max().x.max(b.max().x), e.max().y.max(b.max().y)),
                    )
                }));
            }
            bounds.push(b);
        }
        s.frame = Frame::around(extent);
        s.extent = extent;
        let entries: Vec<Entry> = bounds
            .into_iter()
            .enumerate()
            .filter_map(|(slot, b)| {
                let e = s.frame.outward(b?);
                let bands = s.bands.binary_search_by_key(&(slot as Slot), |(b, _)| *b).map_or(NO_BANDS, |i| i as u32);
                let leaf = Leaf { slot: slot as Slot, bands, start: s.starts[slot] };
                Some(Entry::new(Rectangle::from_corners(e.lower(), e.upper()), leaf))
            })
            .collect();
        s.tree = RTree::bulk_load_with_params(entries);
        let mut keys: Vec<((u32, u64, u64), Slot)> = Vec::with_capacity(s.versions.len());
        let mut ids: Vec<(u64, Slot)> = Vec::with_capacity(s.versions.len());
        for slot in 0..s.versions.len() as Slot {
            let a = Parcel { snapshot: &s, slot }.attributes();
            keys.push(((a.commune, a.sheet, a.number), slot));
            ids.push((a.national_id, slot));
        }
        keys.sort_unstable();
        ids.sort_unstable();
        s.by_key = keys.into_iter().map(|(_, slot)| slot).collect();
        s.by_national_id = ids.into_iter().map(|(_, slot)| slot).collect();
        s
    }

    /// The parcel's bytes and whatever follows them (every part is self-delimiting).
    fn record(&self, slot: Slot) -> &[u8] {
        self.records.get(self.starts[slot as usize] as usize..).unwrap_or_default()
    }

    fn shape_bytes(&self, slot: Slot) -> &[u8] {
        let bytes = self.record(slot);
        let mut at = 0;
        let len = varint(bytes, &mut at) as usize;
        bytes.get(at..at + len).unwrap_or_default()
    }

    /// The boundary of a tree entry.
    #[inline]
    fn shape_at(&self, leaf: Leaf) -> Shape<'_> {
        let bytes = self.records.get(leaf.start as usize..).unwrap_or_default();
        let mut at = 0;
        let len = varint(bytes, &mut at) as usize;
        let bytes = bytes.get(at..at + len).unwrap_or_default();
        Shape::new(bytes, self.bands.get(leaf.bands as usize).map(|(_, b)| b))
    }

    fn shape(&self, slot: Slot) -> Shape<'_> {
        let bytes = self.shape_bytes(slot);
        // Only the few large shapes have bands; the header says which, so most never look.
        let bands = if Shape::is_banded(bytes) {
            self.bands.binary_search_by_key(&slot, |(b, _)| *b).ok().map(|i| &self.bands[i].1)
        } else {
            None
        };
        Shape::new(bytes, bands)
    }

    fn parcel(&self, slot: Slot) -> Parcel<'_> {
        Parcel { snapshot: self, slot }
    }

    pub fn len(&self) -> usize {
        self.versions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// The box around every parcel.
    pub fn extent(&self) -> Option<Rect<f64>> {
        self.extent
    }

    /// Every parcel, in version order.
    pub fn parcels(&self) -> impl Iterator<Item = Parcel<'_>> {
        (0..self.versions.len() as Slot).map(|slot| self.parcel(slot))
    }

    /// The parcels with a version after `after` (all with `None`), in version order.
    pub fn parcels_after(&self, after: Option<VersionId>) -> impl Iterator<Item = Parcel<'_>> {
        let start = after.map_or(0, |v| self.versions.partition_point(|x| *x <= v.0));
        (start as Slot..self.versions.len() as Slot).map(|slot| self.parcel(slot))
    }

    /// The parcels with a version before `before`, in descending version order.
    pub fn parcels_before(&self, before: VersionId) -> impl Iterator<Item = Parcel<'_>> {
        let end = self.versions.partition_point(|x| *x < before.0);
        (0..end as Slot).rev().map(|slot| self.parcel(slot))
    }

    /// The feed position this snapshot reflects.
    pub fn position(&self) -> FeedPosition {
        self.position
    }

    /// Parcels containing the point (longitude, latitude), boundary included.
    pub fn at_point(&self, lon: f64, lat: f64) -> Vec<Parcel<'_>> {
        let mut found = Vec::new();
        self.each_at_point(lon, lat, |p| found.push(p));
        found
    }

    /// [`Snapshot::at_point`] without collecting: `f` is called for each parcel found.
    pub fn each_at_point<'a>(&'a self, lon: f64, lat: f64, mut f: impl FnMut(Parcel<'a>)) {
        if self.is_empty() {
            return;
        }
        // Placed on the grid once, and only if some box holds the point (most random points
        // fall in none).
        let mut probe = None;
        for e in self.tree.locate_all_at_point(&self.frame.point(lon, lat)) {
            let probe = probe.get_or_insert_with(|| shapes::Probe::new(Coord { x: lon, y: lat }));
            if self.shape_at(e.data).intersects_probe(probe) {
                f(self.parcel(e.data.slot));
            }
        }
    }

    /// Parcels intersecting the box, boundary included.
    pub fn in_box(&self, rect: Rect<f64>) -> Vec<Parcel<'_>> {
        let mut found = Vec::new();
        self.each_in_box(rect, |p| found.push(p));
        found
    }

    /// [`Snapshot::in_box`] without collecting: `f` is called for each parcel found.
    pub fn each_in_box<'a>(&'a self, rect: Rect<f64>, mut f: impl FnMut(Parcel<'a>)) {
        let outer = self.frame.outward(rect);
        let inner = self.frame.inward(rect);
        for e in self.tree.locate_in_envelope_intersecting(&outer) {
            // Wholly inside the box: no need to look at the boundary.
            if inner.contains_envelope(&e.geom().envelope()) || self.shape_at(e.data).intersects_rect(rect) {
                f(self.parcel(e.data.slot));
            }
        }
    }

    /// Parcels within `metres` of the point (on the WGS84 spheroid, as PostGIS `ST_DWithin` on
    /// the geography), with their distances.
    pub fn within(&self, lon: f64, lat: f64, metres: f64) -> Vec<(Parcel<'_>, f64)> {
        let p = Coord { x: lon, y: lat };
        let (dlon, dlat) = degrees_around(lat, metres);
        let envelope = self.frame.outward(Rect::new((lon - dlon, lat - dlat), (lon + dlon, lat + dlat)));
        // No point of a box is nearer than its nearest corner or side, and a degree is at least
        // this many metres here: boxes beyond reach are skipped without measuring.
        let metres_a_degree = 110_000.0 * (lat.abs() + dlat + 1.0).min(89.0).to_radians().cos();
        let q = self.frame.point(lon, lat);
        self.tree
            .locate_in_envelope_intersecting(&envelope)
            .filter(|e| (f64::from(e.geom().distance_2(&q)).sqrt() - FRAME_SLACK) * metres_a_degree <= metres)
            .filter_map(|e| {
                let d = self.shape_at(e.data).distance_m(p);
                (d <= metres).then(|| (self.parcel(e.data.slot), d))
            })
            .collect()
    }

    /// The `k` parcels nearest to the point (metres on the spheroid), nearest first; ties in
    /// version order.
    pub fn nearest(&self, lon: f64, lat: f64, k: usize) -> Vec<(Parcel<'_>, f64)> {
        let p = Coord { x: lon, y: lat };
        // No box a degree away is nearer than this many metres (longitude shrinks with latitude).
        let metres_a_degree = 110_000.0 * (lat.abs() + 1.0).min(89.0).to_radians().cos();
        let mut best: Vec<(Parcel<'_>, f64)> = Vec::with_capacity(k + 1);
        if k == 0 {
            return best;
        }
        for (e, d2) in self.tree.nearest_neighbor_iter_with_distance_2(&self.frame.point(lon, lat)) {
            if best.len() == k && (f64::from(d2).sqrt() - FRAME_SLACK) * metres_a_degree > best[k - 1].1 {
                break;
            }
            let d = self.shape_at(e.data).distance_m(p);
            best.push((self.parcel(e.data.slot), d));
            best.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.version().cmp(&b.0.version())));
            best.truncate(k);
        }
        best
    }

    /// Parcels intersecting the polygon, boundary included.
    pub fn intersecting(&self, polygon: &Polygon<f64>) -> Vec<Parcel<'_>> {
        let Some(rect) = geo::BoundingRect::bounding_rect(polygon) else { return Vec::new() };
        self.tree
            .locate_in_envelope_intersecting(&self.frame.outward(rect))
            .filter(|e| self.shape_at(e.data).geometry().intersects(polygon))
            .map(|e| self.parcel(e.data.slot))
            .collect()
    }

    /// The snapshot's codes for `key`, if every part of it is known here.
    fn key_codes(&self, key: &ParcelKey) -> Option<(u32, u64, u64)> {
        let commune = self.communes.iter().position(|c| *c == key.commune)? as u32;
        Some((commune, find_text_or_number(&self.texts, &key.sheet)?, find_text_or_number(&self.texts, &key.number)?))
    }

    pub fn by_key(&self, key: &ParcelKey) -> Option<Parcel<'_>> {
        let codes = self.key_codes(key)?;
        let code_of = |slot: Slot| {
            let a = self.parcel(slot).attributes();
            (a.commune, a.sheet, a.number)
        };
        let i = self.by_key.partition_point(|s| code_of(*s) < codes);
        self.by_key.get(i).filter(|s| code_of(**s) == codes).map(|s| self.parcel(*s))
    }

    pub fn by_version(&self, version: VersionId) -> Option<Parcel<'_>> {
        self.versions.binary_search(&version.0).ok().map(|slot| self.parcel(slot as Slot))
    }

    /// Parcels with this national ID (normally one).
    pub fn by_national_id(&self, id: &NationalParcelId) -> impl Iterator<Item = Parcel<'_>> {
        let bits = id.to_bits();
        let bits_of = |slot: &Slot| self.parcel(*slot).attributes().national_id;
        let start = self.by_national_id.partition_point(|s| bits_of(s) < bits);
        self.by_national_id[start..].iter().take_while(move |s| bits_of(s) == bits).map(|s| self.parcel(*s))
    }

    /// Every parcel of the commune (by the 2025 commune code of its key).
    pub fn in_commune(&self, commune: &CommuneCode) -> impl Iterator<Item = Parcel<'_>> {
        let n = self.communes.iter().position(|c| c == commune).map(|n| n as u32);
        let commune_of = |slot: &Slot| self.parcel(*slot).attributes().commune;
        let range = match n {
            Some(n) => {
                let start = self.by_key.partition_point(|s| commune_of(s) < n);
                let end = self.by_key.partition_point(|s| commune_of(s) <= n);
                start..end
            }
            None => 0..0,
        };
        self.by_key[range].iter().map(|s| self.parcel(*s))
    }

    /// Bytes held on the heap: columns, arena, texts, tree nodes and indexes.
    pub fn heap_bytes(&self) -> usize {
        self.heap_parts().iter().map(|(_, bytes)| bytes).sum()
    }

    /// [`Snapshot::heap_bytes`] part by part.
    pub fn heap_parts(&self) -> Vec<(&'static str, usize)> {
        fn nodes<T: RTreeObject>(node: &rstar::ParentNode<T>) -> usize {
            std::mem::size_of_val(node.children())
                + node
                    .children()
                    .iter()
                    .map(|c| match c {
                        rstar::RTreeNode::Parent(p) => nodes(p),
                        rstar::RTreeNode::Leaf(_) => 0,
                    })
                    .sum::<usize>()
        }
        let mut boundaries = 0;
        for slot in 0..self.versions.len() as Slot {
            let bytes = self.shape_bytes(slot);
            boundaries += bytes.len() + crate::codec::varint_len(bytes.len() as u64);
        }
        vec![
            ("tree", nodes(self.tree.root())),
            ("boundaries", boundaries),
            ("attributes", self.records.capacity() - boundaries),
            ("versions and record starts", self.versions.capacity() * 8 + self.starts.capacity() * 8),
            ("key and national-ID indexes", self.by_key.capacity() * 4 + self.by_national_id.capacity() * 4),
            (
                "texts and code tables",
                self.texts.heap_bytes() + self.communes.capacity() * 32 + self.land_uses.capacity() * 32,
            ),
            ("bands of large parcels", self.bands.iter().map(|(_, b)| 112 + b.heap_bytes()).sum::<usize>()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    fn record(v: i64, sheet: &str, number: &str, x: f64, address: Option<&str>) -> ParcelRecord {
        let s = landdb_model::grid::snap;
        ParcelRecord {
            version: VersionId(v),
            key: ParcelKey {
                commune: CommuneCode::parse(if v % 2 == 0 { "20194" } else { "20197" }).expect("code"),
                sheet: sheet.into(),
                number: number.into(),
            },
            national_id: NationalParcelId::from_wgs84(geo::Point::new(108.0 + x, 16.0)).expect("id"),
            land_use: vec![LandUseCode::parse(if v % 3 == 0 { "ODT" } else { "CLN" }).expect("code")],
            area_m2: 100.0 + x,
            address: address.map(str::to_owned),
            geometry: MultiPolygon(vec![polygon![
                (x: s(108.0 + x), y: s(16.0)), (x: s(108.0001 + x), y: s(16.0)), (x: s(108.0001 + x), y: s(16.0001)), (x: s(108.0 + x), y: s(16.0001))
            ]]),
        }
    }

    proptest::proptest! {
        /// Whatever goes in comes out: every parcel, once, with every attribute as it was, and
        /// each found by its version, key and national ID.
        #[test]
        fn parcels_round_trip(
            parcels in proptest::collection::btree_map(0i64..10_000, ("[0-9]{1,3}|0[0-9]|[A-Z]{1,2}-[0-9]", "[0-9]{1,4}|[0-9]{1,3}[a-z]", proptest::option::of("(Số [0-9]{1,3} [A-Z][a-z]{2,6}, )?Phường [A-Z][a-z]{2,5}(, Đà Nẵng)?")), 0..60),
        ) {
            let records: Vec<ParcelRecord> = parcels
                .iter()
                .enumerate()
                .map(|(i, (v, (sheet, number, address)))| record(*v, sheet, &format!("{number}{i}"), i as f64 * 0.001, address.as_deref()))
                .collect();
            // Any arrival order.
            let mut shuffled = records.clone();
            shuffled.reverse();
            let s = Snapshot::build(shuffled, FeedPosition(3));
            proptest::prop_assert_eq!(s.len(), records.len());
            let back: Vec<ParcelRecord> = s.parcels().map(|p| p.record()).collect();
            proptest::prop_assert_eq!(&back, &records);
            for r in &records {
                proptest::prop_assert_eq!(s.by_version(r.version).map(|p| p.record()), Some(r.clone()));
                proptest::prop_assert_eq!(s.by_key(&r.key).map(|p| p.version()), Some(r.version));
                proptest::prop_assert!(s.by_national_id(&r.national_id).any(|p| p.version() == r.version));
            }
            for commune in ["20194", "20197"] {
                let c = CommuneCode::parse(commune).expect("code");
                let mut found: Vec<i64> = s.in_commune(&c).map(|p| p.version().0).collect();
                found.sort_unstable();
                let expected: Vec<i64> = records.iter().filter(|r| r.key.commune == c).map(|r| r.version.0).collect();
                proptest::prop_assert_eq!(found, expected);
            }
            let absent = ParcelKey { commune: CommuneCode::parse("20194").expect("code"), sheet: "zz".into(), number: "1".into() };
            proptest::prop_assert!(s.by_key(&absent).is_none());
        }
    }

    /// A leaf carries its record's start at no cost: a tree node is sized by the inner nodes.
    #[test]
    fn a_leaf_is_no_larger_than_an_inner_node() {
        assert!(std::mem::size_of::<Entry>() <= std::mem::size_of::<rstar::ParentNode<Entry>>());
        assert_eq!(std::mem::size_of::<rstar::RTreeNode<Entry>>(), std::mem::size_of::<rstar::ParentNode<Entry>>());
    }

    #[test]
    fn frame_boxes_hold_what_they_were_made_from() {
        let f = Frame::around(Some(Rect::new((102.1, 8.3), (109.9, 23.4))));
        for (lon, lat) in [(102.123456789, 8.3), (109.99999999, 23.39999999), (105.5, 16.00000001)] {
            let r = Rect::new((lon, lat), (lon + 1e-7, lat + 1e-7));
            let q = f.point(lon, lat);
            assert!(f.outward(r).contains_point(&q));
            let inner = f.inward(Rect::new((lon - 1e-3, lat - 1e-3), (lon + 1e-3, lat + 1e-3)));
            assert!(inner.contains_envelope(&f.outward(r)));
        }
    }
}
