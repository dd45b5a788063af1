//! What the engine answers from at one feed position: a large base snapshot, the parcels created
//! since it was built in a small one, and the base versions retired since. Immutable: the engine
//! replaces the whole view, so a reader keeps a consistent one however the feed moves.

use std::collections::HashSet;
use std::sync::Arc;

use geo::{Polygon, Rect};
use landdb_model::{CommuneCode, FeedPosition, LandUseCode, NationalParcelId, ParcelKey, VersionId};
use rayon::prelude::*;

use crate::ParcelRecord;
use crate::snapshot::{Parcel, Snapshot, SnapshotBuilder};

#[derive(Debug)]
pub struct View {
    pub(crate) base: Arc<Snapshot>,
    pub(crate) recent: Snapshot,
    pub(crate) retired: HashSet<VersionId>,
    position: FeedPosition,
}

/// Recent parcels are merged into the base once there are more than this (or an eighth of it).
const MERGE_FROM: usize = 100_000;

impl View {
    pub(crate) fn of(base: Snapshot) -> Self {
        let position = base.position;
        View { base: Arc::new(base), recent: Snapshot::build(Vec::new(), position), retired: HashSet::new(), position }
    }

    pub(crate) fn from_parts(base: Snapshot, recent: Snapshot, retired: HashSet<VersionId>) -> Self {
        let position = recent.position;
        View { base: Arc::new(base), recent, retired, position }
    }

    /// Whether a parcel this view found is still current (the recent ones always are).
    fn current(&self, parcel: &Parcel<'_>) -> bool {
        self.retired.is_empty() || parcel.is_in(&self.recent) || !self.retired.contains(&parcel.version())
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
    pub fn at_point(&self, lon: f64, lat: f64) -> Vec<Parcel<'_>> {
        let mut found = Vec::new();
        self.each_at_point(lon, lat, |p| found.push(p));
        found
    }

    /// [`View::at_point`] for many points at once, on every core.
    pub fn at_points(&self, points: &[(f64, f64)]) -> Vec<Vec<Parcel<'_>>> {
        points.par_iter().map(|(lon, lat)| self.at_point(*lon, *lat)).collect()
    }

    /// [`View::at_point`] without collecting: `f` is called for each parcel found.
    pub fn each_at_point<'a>(&'a self, lon: f64, lat: f64, mut f: impl FnMut(Parcel<'a>)) {
        self.base.each_at_point(lon, lat, |p| {
            if self.current(&p) {
                f(p);
            }
        });
        self.recent.each_at_point(lon, lat, f);
    }

    /// Parcels at the point whose land use includes one of `codes` (all of them when empty).
    pub fn at_point_with_land_use(&self, lon: f64, lat: f64, codes: &[LandUseCode]) -> Vec<Parcel<'_>> {
        let mut found = Vec::new();
        self.each_at_point(lon, lat, |p| {
            if codes.is_empty() || p.has_land_use(codes) {
                found.push(p);
            }
        });
        found
    }

    /// Parcels intersecting the box, boundary included.
    pub fn in_box(&self, rect: Rect<f64>) -> Vec<Parcel<'_>> {
        let mut found = Vec::new();
        self.each_in_box(rect, |p| found.push(p));
        found
    }

    /// [`View::in_box`] for many boxes at once, on every core.
    pub fn in_boxes(&self, rects: &[Rect<f64>]) -> Vec<Vec<Parcel<'_>>> {
        rects.par_iter().map(|r| self.in_box(*r)).collect()
    }

    /// [`View::in_box`] without collecting: `f` is called for each parcel found.
    pub fn each_in_box<'a>(&'a self, rect: Rect<f64>, mut f: impl FnMut(Parcel<'a>)) {
        self.base.each_in_box(rect, |p| {
            if self.current(&p) {
                f(p);
            }
        });
        self.recent.each_in_box(rect, f);
    }

    /// Parcels within `metres` of the point, with their distances (see [`Snapshot::within`]).
    pub fn within(&self, lon: f64, lat: f64, metres: f64) -> Vec<(Parcel<'_>, f64)> {
        let mut found: Vec<(Parcel<'_>, f64)> =
            self.base.within(lon, lat, metres).into_iter().filter(|(p, _)| self.current(p)).collect();
        found.extend(self.recent.within(lon, lat, metres));
        found
    }

    /// The `k` current parcels nearest to the point, nearest first (see [`Snapshot::nearest`]).
    pub fn nearest(&self, lon: f64, lat: f64, k: usize) -> Vec<(Parcel<'_>, f64)> {
        // Retired base parcels may take places: ask the base for as many more.
        let mut found: Vec<(Parcel<'_>, f64)> = self
            .base
            .nearest(lon, lat, k + self.retired.len())
            .into_iter()
            .filter(|(p, _)| self.current(p))
            .chain(self.recent.nearest(lon, lat, k))
            .collect();
        found.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.version().cmp(&b.0.version())));
        found.truncate(k);
        found
    }

    /// Parcels intersecting the polygon, boundary included.
    pub fn intersecting(&self, polygon: &Polygon<f64>) -> Vec<Parcel<'_>> {
        let mut found: Vec<Parcel<'_>> =
            self.base.intersecting(polygon).into_iter().filter(|p| self.current(p)).collect();
        found.extend(self.recent.intersecting(polygon));
        found
    }

    pub fn by_key(&self, key: &ParcelKey) -> Option<Parcel<'_>> {
        self.recent.by_key(key).or_else(|| self.base.by_key(key).filter(|p| self.current(p)))
    }

    pub fn by_version(&self, version: VersionId) -> Option<Parcel<'_>> {
        self.recent.by_version(version).or_else(|| self.base.by_version(version).filter(|p| self.current(p)))
    }

    /// Current parcels with this national ID (normally one).
    pub fn by_national_id(&self, id: &NationalParcelId) -> Vec<Parcel<'_>> {
        self.base.by_national_id(id).filter(|p| self.current(p)).chain(self.recent.by_national_id(id)).collect()
    }

    /// Every current parcel of the commune.
    pub fn in_commune(&self, commune: &CommuneCode) -> Vec<Parcel<'_>> {
        self.base.in_commune(commune).filter(|p| self.current(p)).chain(self.recent.in_commune(commune)).collect()
    }

    /// Every current parcel with a version after `after` (all with `None`), in version order:
    /// what keyset paging reads, however deep the page.
    pub fn parcels_after(&self, after: Option<VersionId>) -> impl Iterator<Item = Parcel<'_>> {
        let mut base = self.base.parcels_after(after).filter(|p| self.current(p)).peekable();
        let mut recent = self.recent.parcels_after(after).peekable();
        std::iter::from_fn(move || match (base.peek(), recent.peek()) {
            (Some(b), Some(r)) if r.version() < b.version() => recent.next(),
            (Some(_), _) => base.next(),
            (None, _) => recent.next(),
        })
    }

    /// Every current parcel with a version before `before`, in descending version order: what
    /// a `prev` link reads.
    pub fn parcels_before(&self, before: VersionId) -> impl Iterator<Item = Parcel<'_>> {
        let mut base = self.base.parcels_before(before).filter(|p| self.current(p)).peekable();
        let mut recent = self.recent.parcels_before(before).peekable();
        std::iter::from_fn(move || match (base.peek(), recent.peek()) {
            (Some(b), Some(r)) if r.version() > b.version() => recent.next(),
            (Some(_), _) => base.next(),
            (None, _) => recent.next(),
        })
    }

    /// Every current parcel, the base's in version order, then the recent ones.
    pub fn parcels(&self) -> impl Iterator<Item = Parcel<'_>> {
        self.base.parcels().filter(|p| self.current(p)).chain(self.recent.parcels())
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

    /// Bytes held on the heap, part by part (base and recent snapshots together).
    pub fn heap_parts(&self) -> Vec<(&'static str, usize)> {
        let mut parts = self.base.heap_parts();
        for (total, (_, more)) in parts.iter_mut().zip(self.recent.heap_parts()) {
            total.1 += more;
        }
        parts.push(("retired since the base", self.retired.capacity() * 16));
        parts
    }

    /// Bytes held on the heap.
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
        let mut recent = SnapshotBuilder::default();
        for p in self.recent.parcels().filter(|p| !gone.contains(&p.version()) && !fresh.contains(&p.version())) {
            recent.push(&p.record());
        }
        for c in created.iter().filter(|c| !gone.contains(&c.version)) {
            recent.push(c);
        }
        if recent.len() > MERGE_FROM.max(self.base.len() / 8) {
            let recent = recent.finish(position);
            let mut all = SnapshotBuilder::default();
            for p in self.base.parcels().filter(|p| !base_retired.contains(&p.version())) {
                all.push(&p.record());
            }
            for p in recent.parcels() {
                all.push(&p.record());
            }
            return View::of(all.finish(position));
        }
        View { base: Arc::clone(&self.base), recent: recent.finish(position), retired: base_retired, position }
    }
}
