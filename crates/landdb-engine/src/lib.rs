//! The spatial query engine: every current parcel in memory, an R-tree (rstar, bulk-loaded) over
//! their bounding boxes, boundaries packed in one arena ([`shapes`]), and the attributes the API
//! answers with. Every query is exact: the R-tree finds candidates, a true geometric test decides,
//! with PostGIS `ST_Intersects` semantics (a point on a shared edge is in both parcels).
//!
//! A [`Snapshot`] is immutable; the [`Engine`] swaps in a new one, so readers are never blocked.

pub mod shapes;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use geo::{Coord, Intersects, MultiPolygon, Polygon, Rect};
use landdb_model::{FeedPosition, LandUseCode, NationalParcelId, ParcelKey, ParcelVersion, VersionId};
use landdb_store::{ChangeKind, ParcelStore, StoreError};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, Envelope as _, RTree, RTreeObject};

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
    by_version: HashMap<VersionId, Slot>,
    by_key: HashMap<ParcelKey, Slot>,
    position: FeedPosition,
}

impl Snapshot {
    /// A snapshot of `parcels` (current ones) at feed `position`.
    pub fn build(parcels: impl IntoIterator<Item = ParcelRecord>, position: FeedPosition) -> Self {
        let mut s = Snapshot {
            parcels: Vec::new(),
            shapes: Shapes::default(),
            tree: RTree::new_with_params(),
            by_version: HashMap::new(),
            by_key: HashMap::new(),
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
            s.by_version.insert(v.version, slot);
            s.by_key.insert(v.key.clone(), slot);
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
        self.by_key.get(key).map(|s| &self.parcels[*s as usize])
    }

    pub fn by_version(&self, version: VersionId) -> Option<&ParcelInfo> {
        self.by_version.get(&version).map(|s| &self.parcels[*s as usize])
    }

    /// The parcel's boundary.
    pub fn geometry(&self, info: &ParcelInfo) -> MultiPolygon<f64> {
        self.shapes.geometry(info.shape)
    }

    /// Bytes held on the heap, roughly: parcels, boundaries, tree and maps.
    pub fn heap_bytes(&self) -> usize {
        let info = self.parcels.capacity() * std::mem::size_of::<ParcelInfo>()
            + self
                .parcels
                .iter()
                .map(|p| {
                    p.key.sheet.capacity()
                        + p.key.number.capacity()
                        + p.land_use.capacity() * std::mem::size_of::<LandUseCode>()
                        + p.address.as_ref().map_or(0, String::capacity)
                })
                .sum::<usize>();
        let tree = self.tree.size() * (std::mem::size_of::<Envelope>() + 8);
        let maps = (self.by_version.capacity() + self.by_key.capacity()) * 48;
        info + self.shapes.heap_bytes() + tree + maps
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The engine a process serves from: the current snapshot, replaced whole when the feed moves.
#[derive(Debug)]
pub struct Engine {
    current: RwLock<Arc<Snapshot>>,
}

/// Parcels read from the store per page while loading.
const PAGE: usize = 10_000;

impl Engine {
    /// Loads every current parcel. The feed head is read first and the changes since then are
    /// applied after, so imports committing during the load are not missed.
    pub async fn load<S: ParcelStore>(store: &S) -> Result<Self, EngineError> {
        let head = store.feed_head().await?;
        let mut versions = Vec::new();
        let mut after = None;
        loop {
            let page = store.current_page(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            versions.extend(page);
        }
        let snapshot = Snapshot::build(versions.into_iter().map(ParcelRecord::from), head);
        let engine = Engine { current: RwLock::new(Arc::new(snapshot)) };
        engine.follow(store).await?;
        Ok(engine)
    }

    /// The snapshot to answer from; it stays valid however the engine moves on.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Applies every change committed since the snapshot's position. Returns the new position.
    pub async fn follow<S: ParcelStore>(&self, store: &S) -> Result<FeedPosition, EngineError> {
        let old = self.snapshot();
        let mut position = old.position();
        let mut created: Vec<ParcelVersion> = Vec::new();
        let mut retired: Vec<VersionId> = Vec::new();
        loop {
            let changes = store.changes_since(position, PAGE).await?;
            let Some(last) = changes.last() else { break };
            position = last.position;
            for change in changes {
                match change.kind {
                    ChangeKind::Created => {
                        if let Some(v) = store.version(change.version).await? {
                            created.push(v);
                        }
                    }
                    ChangeKind::Retired => retired.push(change.version),
                }
            }
        }
        if position == old.position() {
            return Ok(position);
        }
        let retired: std::collections::HashSet<VersionId> = retired.into_iter().collect();
        created.retain(|v| !retired.contains(&v.id));
        // Rebuilt from the old snapshot's parcels plus the new ones (simple and exact; an
        // overlay for national-scale snapshots is the next step).
        let fresh: std::collections::HashSet<VersionId> = created.iter().map(|v| v.id).collect();
        let kept: Vec<ParcelRecord> = old
            .parcels
            .iter()
            .filter(|p| !retired.contains(&p.version) && !fresh.contains(&p.version))
            .map(|p| old.record(p))
            .collect();
        let next = Snapshot::build(kept.into_iter().chain(created.into_iter().map(ParcelRecord::from)), position);
        match self.current.write() {
            Ok(mut guard) => *guard = Arc::new(next),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
        }
        Ok(position)
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
