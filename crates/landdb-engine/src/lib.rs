//! The spatial query engine: every current parcel in memory, an R-tree (rstar, bulk-loaded) over
//! their bounding boxes, boundaries packed in one arena ([`shapes`]), and the attributes the API
//! answers with. Every query is exact: the R-tree finds candidates, a true geometric test decides,
//! with PostGIS `ST_Intersects` semantics (a point on a shared edge is in both parcels).
//!
//! A [`Snapshot`] is immutable; the [`Engine`] swaps in a new one, so readers are never blocked.

pub mod distance;
pub mod file;
pub mod shapes;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use geo::{Coord, Intersects, MultiPolygon, Polygon, Rect};
use landdb_model::{CommuneCode, FeedPosition, LandUseCode, NationalParcelId, ParcelKey, ParcelVersion, VersionId};
use landdb_store::{ChangeKind, ParcelStore, StoreError};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, Envelope as _, PointDistance, RTree, RTreeObject};

use crate::shapes::{ShapeRef, Shapes};

/// What the engine keeps of a parcel besides its boundary: what lookups answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct ParcelInfo {
    pub version: VersionId,
    pub key: ParcelKey,
    pub national_id: NationalParcelId,
    pub land_use: Vec<LandUseCode>,
    pub area_m2: f64,
    pub address: Option<String>,
    shape: ShapeRef,
}

/// A parcel as the engine takes it in.
#[derive(Debug, Clone, PartialEq)]
pub struct ParcelRecord {
    pub version: VersionId,
    pub key: ParcelKey,
    pub national_id: NationalParcelId,
    pub land_use: Vec<LandUseCode>,
    pub area_m2: f64,
    pub address: Option<String>,
    pub geometry: MultiPolygon<f64>,
}

impl From<ParcelVersion> for ParcelRecord {
    fn from(v: ParcelVersion) -> Self {
        ParcelRecord {
            version: v.id,
            key: v.parcel.key,
            national_id: v.parcel.national_id,
            land_use: v.parcel.land_use,
            area_m2: v.parcel.geometry_area_m2,
            address: v.parcel.address,
            geometry: v.parcel.geometry,
        }
    }
}

/// Half-sides in degrees (longitude, latitude) of a box that holds every point within `metres`
/// of a point at latitude `lat`, with room to spare.
fn degrees_around(lat: f64, metres: f64) -> (f64, f64) {
    let dlat = metres / 110_000.0;
    let dlon = metres / (110_000.0 * (lat.abs() + dlat + 1.0).min(89.0).to_radians().cos());
    (dlon, dlat)
}

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

/// Slots by the hash of a key, sorted: 16 bytes a parcel where a map of owned keys costs ten
/// times that. Callers check the key of what they find (hashes can collide).
#[derive(Debug, Default)]
struct HashIndex {
    entries: Vec<(u64, Slot)>,
}

impl HashIndex {
    fn hash(key: &impl std::hash::Hash) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        BuildHasherDefault::<DefaultHasher>::default().hash_one(key)
    }

    fn push(&mut self, key: &impl std::hash::Hash, slot: Slot) {
        self.entries.push((Self::hash(key), slot));
    }

    fn seal(&mut self) {
        self.entries.sort_unstable();
        self.entries.shrink_to_fit();
    }

    /// The parcels whose key hashes like `key`.
    fn find<'a>(
        &'a self,
        key: &impl std::hash::Hash,
        parcels: &'a [ParcelInfo],
    ) -> impl Iterator<Item = &'a ParcelInfo> {
        let h = Self::hash(key);
        let start = self.entries.partition_point(|(k, _)| *k < h);
        self.entries[start..].iter().take_while(move |(k, _)| *k == h).map(|(_, s)| &parcels[*s as usize])
    }
}

/// Index into [`Snapshot::parcels`].
type Slot = u32;
/// A parcel's box in the tree, with where its boundary is: a candidate is tested without
/// touching its attributes, which are read only for a hit.
type Envelope = GeomWithData<Rectangle<[f64; 2]>, (Slot, ShapeRef)>;

/// Every current parcel at one feed position.
#[derive(Debug)]
pub struct Snapshot {
    parcels: Vec<ParcelInfo>,
    shapes: Shapes,
    tree: RTree<Envelope, TreeParams>,
    by_version: HashIndex,
    by_key: HashIndex,
    by_national_id: HashIndex,
    by_commune: HashIndex,
    position: FeedPosition,
}

impl Snapshot {
    /// A snapshot of `parcels` (current ones) at feed `position`.
    pub fn build(parcels: impl IntoIterator<Item = ParcelRecord>, position: FeedPosition) -> Self {
        let mut s = Snapshot {
            parcels: Vec::new(),
            shapes: Shapes::default(),
            tree: RTree::new_with_params(),
            by_version: HashIndex::default(),
            by_key: HashIndex::default(),
            by_national_id: HashIndex::default(),
            by_commune: HashIndex::default(),
            position,
        };
        let mut envelopes = Vec::new();
        for v in parcels {
            let Some(rect) = geo::BoundingRect::bounding_rect(&v.geometry) else { continue };
            let slot = s.parcels.len() as Slot;
            let shape = s.shapes.push(&v.geometry);
            envelopes.push(Envelope::new(
                Rectangle::from_corners([rect.min().x, rect.min().y], [rect.max().x, rect.max().y]),
                (slot, shape),
            ));
            s.by_version.push(&v.version, slot);
            s.by_key.push(&v.key, slot);
            s.by_national_id.push(&v.national_id, slot);
            s.by_commune.push(&v.key.commune, slot);
            s.parcels.push(ParcelInfo {
                version: v.version,
                key: v.key,
                national_id: v.national_id,
                land_use: v.land_use,
                area_m2: v.area_m2,
                address: v.address,
                shape,
            });
        }
        s.tree = RTree::bulk_load_with_params(envelopes);
        for index in [&mut s.by_version, &mut s.by_key, &mut s.by_national_id, &mut s.by_commune] {
            index.seal();
        }
        s
    }

    pub fn len(&self) -> usize {
        self.parcels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parcels.is_empty()
    }

    /// The box around every parcel.
    pub fn extent(&self) -> Option<Rect<f64>> {
        (!self.parcels.is_empty()).then(|| {
            let e = self.tree.root().envelope();
            Rect::new((e.lower()[0], e.lower()[1]), (e.upper()[0], e.upper()[1]))
        })
    }

    /// Every parcel, in no particular order.
    pub fn parcels(&self) -> impl Iterator<Item = &ParcelInfo> {
        self.parcels.iter()
    }

    /// The feed position this snapshot reflects.
    pub fn position(&self) -> FeedPosition {
        self.position
    }

    /// Parcels containing the point (longitude, latitude), boundary included.
    pub fn at_point(&self, lon: f64, lat: f64) -> Vec<&ParcelInfo> {
        let mut found = Vec::new();
        self.each_at_point(lon, lat, |info| found.push(info));
        found
    }

    /// [`Snapshot::at_point`] without collecting: `f` is called for each parcel found.
    pub fn each_at_point<'a>(&'a self, lon: f64, lat: f64, mut f: impl FnMut(&'a ParcelInfo)) {
        let p = Coord { x: lon, y: lat };
        for e in self.tree.locate_all_at_point(&[lon, lat]) {
            let (slot, shape) = e.data;
            if self.shapes.intersects_point(shape, p) {
                f(&self.parcels[slot as usize]);
            }
        }
    }

    /// Parcels intersecting the box, boundary included.
    pub fn in_box(&self, rect: Rect<f64>) -> Vec<&ParcelInfo> {
        let mut found = Vec::new();
        self.each_in_box(rect, |info| found.push(info));
        found
    }

    /// [`Snapshot::in_box`] without collecting: `f` is called for each parcel found.
    pub fn each_in_box<'a>(&'a self, rect: Rect<f64>, mut f: impl FnMut(&'a ParcelInfo)) {
        let envelope = AABB::from_corners([rect.min().x, rect.min().y], [rect.max().x, rect.max().y]);
        for e in self.tree.locate_in_envelope_intersecting(&envelope) {
            let (slot, shape) = e.data;
            // Wholly inside the box: no need to look at the boundary.
            if envelope.contains_envelope(&e.geom().envelope()) || self.shapes.intersects_rect(shape, rect) {
                f(&self.parcels[slot as usize]);
            }
        }
    }

    /// Parcels within `metres` of the point (on the WGS84 spheroid, as PostGIS `ST_DWithin` on
    /// the geography), with their distances.
    pub fn within(&self, lon: f64, lat: f64, metres: f64) -> Vec<(&ParcelInfo, f64)> {
        let p = Coord { x: lon, y: lat };
        let (dlon, dlat) = degrees_around(lat, metres);
        let envelope = AABB::from_corners([lon - dlon, lat - dlat], [lon + dlon, lat + dlat]);
        // No point of a box is nearer than its nearest corner or side, and a degree is at least
        // this many metres here: boxes beyond reach are skipped without measuring.
        let metres_a_degree = 110_000.0 * (lat.abs() + dlat + 1.0).min(89.0).to_radians().cos();
        self.tree
            .locate_in_envelope_intersecting(&envelope)
            .filter(|e| e.geom().distance_2(&[lon, lat]).sqrt() * metres_a_degree <= metres)
            .filter_map(|e| {
                let (slot, shape) = e.data;
                let d = self.shapes.distance_m(shape, p);
                (d <= metres).then(|| (&self.parcels[slot as usize], d))
            })
            .collect()
    }

    /// The `k` parcels nearest to the point (metres on the spheroid), nearest first; ties in
    /// version order.
    pub fn nearest(&self, lon: f64, lat: f64, k: usize) -> Vec<(&ParcelInfo, f64)> {
        let p = Coord { x: lon, y: lat };
        // No box a degree away is nearer than this many metres (longitude shrinks with latitude).
        let metres_a_degree = 110_000.0 * (lat.abs() + 1.0).min(89.0).to_radians().cos();
        let mut best: Vec<(&ParcelInfo, f64)> = Vec::with_capacity(k + 1);
        for (e, d2) in self.tree.nearest_neighbor_iter_with_distance_2(&[lon, lat]) {
            if best.len() == k && d2.sqrt() * metres_a_degree > best[k - 1].1 {
                break;
            }
            let (slot, shape) = e.data;
            let d = self.shapes.distance_m(shape, p);
            let info = &self.parcels[slot as usize];
            best.push((info, d));
            best.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.version.cmp(&b.0.version)));
            best.truncate(k);
        }
        best
    }

    /// Parcels intersecting the polygon, boundary included.
    pub fn intersecting(&self, polygon: &Polygon<f64>) -> Vec<&ParcelInfo> {
        let Some(rect) = geo::BoundingRect::bounding_rect(polygon) else { return Vec::new() };
        let envelope = AABB::from_corners([rect.min().x, rect.min().y], [rect.max().x, rect.max().y]);
        self.tree
            .locate_in_envelope_intersecting(&envelope)
            .map(|e| &self.parcels[e.data.0 as usize])
            .filter(|info| self.shapes.geometry(info.shape).intersects(polygon))
            .collect()
    }

    pub fn by_key(&self, key: &ParcelKey) -> Option<&ParcelInfo> {
        self.by_key.find(key, &self.parcels).find(|p| p.key == *key)
    }

    pub fn by_version(&self, version: VersionId) -> Option<&ParcelInfo> {
        self.by_version.find(&version, &self.parcels).find(|p| p.version == version)
    }

    /// Parcels with this national ID (normally one).
    pub fn by_national_id<'a>(&'a self, id: &'a NationalParcelId) -> impl Iterator<Item = &'a ParcelInfo> {
        self.by_national_id.find(id, &self.parcels).filter(move |p| p.national_id == *id)
    }

    /// Every parcel of the commune (by the 2025 commune code of its key).
    pub fn in_commune<'a>(&'a self, commune: &'a CommuneCode) -> impl Iterator<Item = &'a ParcelInfo> {
        self.by_commune.find(commune, &self.parcels).filter(move |p| p.key.commune == *commune)
    }

    /// The parcel's boundary.
    pub fn geometry(&self, info: &ParcelInfo) -> MultiPolygon<f64> {
        self.shapes.geometry(info.shape)
    }

    /// Bytes held on the heap: parcels, boundaries, tree and indexes (what the allocator adds to
    /// each string is not counted; the resident growth of the process shows it).
    pub fn heap_bytes(&self) -> usize {
        let info = self.parcels.capacity() * std::mem::size_of::<ParcelInfo>()
            + self
                .parcels
                .iter()
                .map(|p| {
                    p.key.sheet.capacity()
                        + p.key.number.capacity()
                        + p.key.commune.as_str().len()
                        + p.national_id.as_str().len()
                        + p.land_use.capacity() * std::mem::size_of::<LandUseCode>()
                        + p.address.as_ref().map_or(0, String::capacity)
                })
                .sum::<usize>();
        let tree = self.tree.size() * (std::mem::size_of::<Envelope>() + 8);
        let maps = [&self.by_version, &self.by_key, &self.by_national_id, &self.by_commune]
            .iter()
            .map(|i| i.entries.capacity() * std::mem::size_of::<(u64, Slot)>())
            .sum::<usize>();
        info + self.shapes.heap_bytes() + tree + maps
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    File(#[from] file::FileError),
}

/// What the engine answers from at one feed position: a large base snapshot, the parcels created
/// since it was built in a small one, and the base versions retired since. Immutable: the engine
/// replaces the whole view, so a reader keeps a consistent one however the feed moves.
#[derive(Debug)]
pub struct View {
    base: Arc<Snapshot>,
    recent: Snapshot,
    retired: HashSet<VersionId>,
    position: FeedPosition,
}

impl View {
    fn of(base: Snapshot) -> Self {
        let position = base.position;
        View { base: Arc::new(base), recent: Snapshot::build(Vec::new(), position), retired: HashSet::new(), position }
    }

    /// Whether a parcel of the base is still current (the recent ones always are).
    fn current(&self, info: &ParcelInfo) -> bool {
        self.retired.is_empty() || !self.retired.contains(&info.version)
    }

    /// The feed position this view reflects.
    pub fn position(&self) -> FeedPosition {
        self.position
    }

    pub fn len(&self) -> usize {
        self.base.len() - self.retired.len() + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Parcels containing the point (longitude, latitude), boundary included.
    pub fn at_point(&self, lon: f64, lat: f64) -> Vec<&ParcelInfo> {
        let mut found = Vec::new();
        self.each_at_point(lon, lat, |info| found.push(info));
        found
    }

    /// [`View::at_point`] without collecting: `f` is called for each parcel found.
    pub fn each_at_point<'a>(&'a self, lon: f64, lat: f64, mut f: impl FnMut(&'a ParcelInfo)) {
        self.base.each_at_point(lon, lat, |info| {
            if self.current(info) {
                f(info);
            }
        });
        self.recent.each_at_point(lon, lat, f);
    }

    /// Parcels intersecting the box, boundary included.
    pub fn in_box(&self, rect: Rect<f64>) -> Vec<&ParcelInfo> {
        let mut found = Vec::new();
        self.each_in_box(rect, |info| found.push(info));
        found
    }

    /// [`View::in_box`] without collecting: `f` is called for each parcel found.
    pub fn each_in_box<'a>(&'a self, rect: Rect<f64>, mut f: impl FnMut(&'a ParcelInfo)) {
        self.base.each_in_box(rect, |info| {
            if self.current(info) {
                f(info);
            }
        });
        self.recent.each_in_box(rect, f);
    }

    /// Parcels within `metres` of the point, with their distances (see [`Snapshot::within`]).
    pub fn within(&self, lon: f64, lat: f64, metres: f64) -> Vec<(&ParcelInfo, f64)> {
        let mut found: Vec<(&ParcelInfo, f64)> =
            self.base.within(lon, lat, metres).into_iter().filter(|(info, _)| self.current(info)).collect();
        found.extend(self.recent.within(lon, lat, metres));
        found
    }

    /// The `k` current parcels nearest to the point, nearest first (see [`Snapshot::nearest`]).
    pub fn nearest(&self, lon: f64, lat: f64, k: usize) -> Vec<(&ParcelInfo, f64)> {
        // Retired base parcels may take places: ask the base for as many more.
        let mut found: Vec<(&ParcelInfo, f64)> = self
            .base
            .nearest(lon, lat, k + self.retired.len())
            .into_iter()
            .filter(|(info, _)| self.current(info))
            .chain(self.recent.nearest(lon, lat, k))
            .collect();
        found.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.version.cmp(&b.0.version)));
        found.truncate(k);
        found
    }

    /// Parcels intersecting the polygon, boundary included.
    pub fn intersecting(&self, polygon: &Polygon<f64>) -> Vec<&ParcelInfo> {
        let mut found: Vec<&ParcelInfo> =
            self.base.intersecting(polygon).into_iter().filter(|info| self.current(info)).collect();
        found.extend(self.recent.intersecting(polygon));
        found
    }

    pub fn by_key(&self, key: &ParcelKey) -> Option<&ParcelInfo> {
        self.recent.by_key(key).or_else(|| self.base.by_key(key).filter(|info| self.current(info)))
    }

    /// Parcels at the point whose land use includes one of `codes` (all of them when empty).
    pub fn at_point_with_land_use(&self, lon: f64, lat: f64, codes: &[LandUseCode]) -> Vec<&ParcelInfo> {
        let mut found = Vec::new();
        self.each_at_point(lon, lat, |info| {
            if codes.is_empty() || info.land_use.iter().any(|c| codes.contains(c)) {
                found.push(info);
            }
        });
        found
    }

    pub fn by_version(&self, version: VersionId) -> Option<&ParcelInfo> {
        self.recent.by_version(version).or_else(|| self.base.by_version(version).filter(|info| self.current(info)))
    }

    /// Current parcels with this national ID (normally one).
    pub fn by_national_id<'a>(&'a self, id: &'a NationalParcelId) -> Vec<&'a ParcelInfo> {
        self.base.by_national_id(id).filter(|info| self.current(info)).chain(self.recent.by_national_id(id)).collect()
    }

    /// Every current parcel of the commune.
    pub fn in_commune<'a>(&'a self, commune: &'a CommuneCode) -> Vec<&'a ParcelInfo> {
        self.base.in_commune(commune).filter(|info| self.current(info)).chain(self.recent.in_commune(commune)).collect()
    }

    /// Every current parcel, in no particular order.
    pub fn parcels(&self) -> impl Iterator<Item = &ParcelInfo> {
        self.base.parcels().filter(|info| self.current(info)).chain(self.recent.parcels())
    }

    /// The boundary of a parcel this view returned.
    pub fn geometry(&self, info: &ParcelInfo) -> MultiPolygon<f64> {
        let in_recent = self.recent.parcels.as_ptr_range().contains(&std::ptr::from_ref(info));
        if in_recent { self.recent.geometry(info) } else { self.base.geometry(info) }
    }

    /// The box around every parcel (of the base and the recent ones).
    pub fn extent(&self) -> Option<Rect<f64>> {
        match (self.base.extent(), self.recent.extent()) {
            (Some(a), Some(b)) => Some(Rect::new(
                (a.min().x.min(b.min().x), a.min().y.min(b.min().y)),
                (a.max().x.max(b.max().x), a.max().y.max(b.max().y)),
            )),
            (a, b) => a.or(b),
        }
    }

    /// Bytes held on the heap, roughly.
    pub fn heap_bytes(&self) -> usize {
        self.base.heap_bytes() + self.recent.heap_bytes() + self.retired.capacity() * 16
    }

    /// The view after `created` became current and `retired` stopped being so, at `position`.
    /// Only the recent parcels are rebuilt, unless they have grown past an eighth of the base:
    /// then everything is merged into a new base.
    pub fn apply(&self, created: Vec<ParcelRecord>, retired: &[VersionId], position: FeedPosition) -> View {
        let gone: HashSet<VersionId> = retired.iter().copied().collect();
        let fresh: HashSet<VersionId> = created.iter().map(|c| c.version).collect();
        let mut base_retired = self.retired.clone();
        base_retired.extend(retired.iter().filter(|v| self.base.by_version(**v).is_some()));
        let recent: Vec<ParcelRecord> = self
            .recent
            .parcels()
            .filter(|p| !gone.contains(&p.version) && !fresh.contains(&p.version))
            .map(|p| self.recent.record(p))
            .chain(created.into_iter().filter(|c| !gone.contains(&c.version)))
            .collect();
        if recent.len() > MERGE_FROM.max(self.base.len() / 8) {
            let all: Vec<ParcelRecord> = self
                .base
                .parcels()
                .filter(|p| !base_retired.contains(&p.version))
                .map(|p| self.base.record(p))
                .chain(recent)
                .collect();
            return View::of(Snapshot::build(all, position));
        }
        View {
            base: Arc::clone(&self.base),
            recent: Snapshot::build(recent, position),
            retired: base_retired,
            position,
        }
    }
}

/// Recent parcels are merged into the base once there are more than this (or an eighth of it).
const MERGE_FROM: usize = 100_000;

/// The engine a process serves from: the current view, replaced whole when the feed moves.
#[derive(Debug)]
pub struct Engine {
    current: RwLock<Arc<View>>,
}

/// Parcels read from the store per page while loading, and changes per read of the feed.
const PAGE: usize = 10_000;

impl Engine {
    /// Loads every current parcel. The feed head is read first and the changes since then are
    /// applied after, so imports committing during the load are not missed.
    pub async fn load<S: ParcelStore>(store: &S) -> Result<Self, EngineError> {
        let head = store.feed_head().await?;
        let mut records = Vec::new();
        let mut after = None;
        loop {
            let page = store.current_page(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            records.extend(page.into_iter().map(ParcelRecord::from));
        }
        let engine = Engine { current: RwLock::new(Arc::new(View::of(Snapshot::build(records, head)))) };
        engine.follow(store).await?;
        Ok(engine)
    }

    /// Starts from a snapshot file written by [`Engine::save`], then follows the feed from the
    /// position it was written at: a restart without reading every parcel from the store.
    pub async fn open<S: ParcelStore>(store: &S, path: &std::path::Path) -> Result<Self, EngineError> {
        let (position, records) = file::read(path)?;
        let engine = Engine { current: RwLock::new(Arc::new(View::of(Snapshot::build(records, position)))) };
        engine.follow(store).await?;
        Ok(engine)
    }

    /// Writes the current view to `path`, for [`Engine::open`].
    pub fn save(&self, path: &std::path::Path) -> Result<(), EngineError> {
        let view = self.snapshot();
        let records = view
            .base
            .parcels()
            .filter(|p| view.current(p))
            .map(|p| view.base.record(p))
            .chain(view.recent.parcels().map(|p| view.recent.record(p)));
        file::write(path, view.position(), view.len(), records)?;
        Ok(())
    }

    /// The view to answer from; it stays valid however the engine moves on.
    pub fn snapshot(&self) -> Arc<View> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Applies every change committed since the view's position, a page of the feed at a time.
    /// Returns the new position.
    pub async fn follow<S: ParcelStore>(&self, store: &S) -> Result<FeedPosition, EngineError> {
        loop {
            let view = self.snapshot();
            let changes = store.changes_since(view.position(), PAGE).await?;
            let Some(last) = changes.last() else { return Ok(view.position()) };
            let position = last.position;
            let mut created = Vec::new();
            let mut retired = Vec::new();
            for change in &changes {
                match change.kind {
                    ChangeKind::Created => created.push(change.version),
                    ChangeKind::Retired => retired.push(change.version),
                }
            }
            let records: Vec<ParcelRecord> =
                store.versions(&created).await?.into_iter().map(ParcelRecord::from).collect();
            let next = Arc::new(view.apply(records, &retired, position));
            match self.current.write() {
                Ok(mut guard) => *guard = next,
                Err(poisoned) => *poisoned.into_inner() = next,
            }
        }
    }
}

impl Snapshot {
    /// A parcel as the snapshot keeps it (for rebuilding).
    fn record(&self, info: &ParcelInfo) -> ParcelRecord {
        ParcelRecord {
            version: info.version,
            key: info.key.clone(),
            national_id: info.national_id.clone(),
            land_use: info.land_use.clone(),
            area_m2: info.area_m2,
            address: info.address.clone(),
            geometry: self.shapes.geometry(info.shape),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    /// A 1 × 1 square parcel at (x, y), version `v`.
    fn square(v: i64, x: f64, y: f64) -> ParcelRecord {
        ParcelRecord {
            version: VersionId(v),
            key: ParcelKey {
                commune: CommuneCode::parse("20194").expect("code"),
                sheet: "1".into(),
                number: v.to_string(),
            },
            national_id: NationalParcelId::parse("w6ugjkr525ux").expect("id"),
            land_use: Vec::new(),
            area_m2: 1.0,
            address: None,
            geometry: MultiPolygon(vec![
                polygon![(x: x, y: y), (x: x + 1.0, y: y), (x: x + 1.0, y: y + 1.0), (x: x, y: y + 1.0)],
            ]),
        }
    }

    fn versions(found: Vec<&ParcelInfo>) -> Vec<i64> {
        let mut v: Vec<i64> = found.iter().map(|p| p.version.0).collect();
        v.sort_unstable();
        v
    }

    proptest::proptest! {
        /// After any sequence of changes, a view answers exactly as a snapshot built from scratch
        /// of the parcels that are current: none lost, none twice, none stale.
        #[test]
        fn applied_changes_answer_like_a_rebuild(
            steps in proptest::collection::vec((proptest::collection::vec(0usize..40, 0..8), 0usize..6), 1..6),
            probes in proptest::collection::vec((0.0f64..40.0, 0.0f64..3.0), 20),
        ) {
            // Forty squares in a row; each step retires some and re-creates the squares it names.
            let mut current: std::collections::HashMap<usize, i64> = (0..40).map(|i| (i, i as i64 + 1)).collect();
            let mut next_version = 100;
            let mut view = View::of(Snapshot::build((0..40).map(|i| square(i as i64 + 1, i as f64, 0.0)), FeedPosition(0)));
            for (k, (touched, created_far)) in steps.into_iter().enumerate() {
                let mut retired = Vec::new();
                let mut created = Vec::new();
                for i in touched {
                    if let Some(v) = current.remove(&i) {
                        retired.push(VersionId(v));
                    }
                    next_version += 1;
                    current.insert(i, next_version);
                    created.push(square(next_version, i as f64, 0.0));
                }
                // Parcels created and retired within one page of the feed never show.
                for j in 0..created_far {
                    next_version += 1;
                    created.push(square(next_version, j as f64, 2.0));
                    retired.push(VersionId(next_version));
                }
                view = view.apply(created, &retired, FeedPosition(k as i64 + 1));
            }
            let rebuilt = Snapshot::build(current.iter().map(|(i, v)| square(*v, *i as f64, 0.0)), FeedPosition(0));
            proptest::prop_assert_eq!(view.len(), current.len());
            let commune = CommuneCode::parse("20194").expect("code");
            proptest::prop_assert_eq!(view.in_commune(&commune).len(), current.len());
            for (i, v) in &current {
                let key = ParcelKey { commune: commune.clone(), sheet: "1".into(), number: v.to_string() };
                proptest::prop_assert_eq!(view.by_key(&key).map(|p| p.version), Some(VersionId(*v)), "square {}", i);
                proptest::prop_assert!(view.by_version(VersionId(*v)).is_some());
            }
            for (x, y) in probes {
                proptest::prop_assert_eq!(versions(view.at_point(x, y)), versions(rebuilt.at_point(x, y)));
                let rect = Rect::new((x, y), (x + 2.5, y + 0.5));
                proptest::prop_assert_eq!(versions(view.in_box(rect)), versions(rebuilt.in_box(rect)));
            }
        }
    }
}

#[cfg(test)]
mod distance_tests {
    use super::*;
    use geo::polygon;

    /// On a grid of 900 squares 50 m wide, `within` and `nearest` agree with measuring every
    /// parcel.
    #[test]
    fn within_and_nearest_agree_with_measuring_everything() {
        let mut records = Vec::new();
        for i in 0..30 {
            for j in 0..30 {
                let (x, y) = (108.2 + f64::from(i) * 0.001, 16.0 + f64::from(j) * 0.001);
                records.push(ParcelRecord {
                    version: VersionId(i64::from(i * 100 + j)),
                    key: ParcelKey {
                        commune: CommuneCode::parse("20194").expect("code"),
                        sheet: "1".into(),
                        number: format!("{i}-{j}"),
                    },
                    national_id: NationalParcelId::parse("w6ugjkr525ux").expect("id"),
                    land_use: Vec::new(),
                    area_m2: 1.0,
                    address: None,
                    geometry: MultiPolygon(vec![polygon![
                        (x: x, y: y), (x: x + 0.0005, y: y), (x: x + 0.0005, y: y + 0.0005), (x: x, y: y + 0.0005)
                    ]]),
                });
            }
        }
        let s = Snapshot::build(records, FeedPosition(0));
        for (lon, lat) in [(108.215, 16.015), (108.19, 15.99), (108.2003, 16.0297), (108.25, 16.05)] {
            let mut all: Vec<(i64, f64)> =
                s.parcels().map(|p| (p.version.0, s.shapes.distance_m(p.shape, Coord { x: lon, y: lat }))).collect();
            all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            for d in [10.0, 100.0, 500.0, 2000.0] {
                let mut ours: Vec<i64> = s.within(lon, lat, d).iter().map(|(p, _)| p.version.0).collect();
                ours.sort_unstable();
                let mut brute: Vec<i64> = all.iter().filter(|(_, m)| *m <= d).map(|(v, _)| *v).collect();
                brute.sort_unstable();
                assert_eq!(ours, brute, "{d} m of ({lon}, {lat})");
            }
            let nearest: Vec<i64> = s.nearest(lon, lat, 7).iter().map(|(p, _)| p.version.0).collect();
            assert_eq!(nearest, all.iter().take(7).map(|(v, _)| *v).collect::<Vec<_>>(), "({lon}, {lat})");
        }
    }
}
