//! The spatial query engine: every current parcel in memory in a compact form ([`snapshot`]), an
//! rstar R-tree over their boxes, boundaries delta-encoded on the storage grid ([`shapes`]), and
//! the attributes the API answers with. Every query is exact: the R-tree finds candidates, a true
//! geometric test decides, with PostGIS `ST_Intersects` semantics (a point on a shared edge is in
//! both parcels).
//!
//! A [`View`] is immutable; the [`Engine`] swaps in a new one as the store's change feed moves,
//! so readers are never blocked.

pub mod codec;
pub mod distance;
pub mod file;
pub mod shapes;
pub mod snapshot;
pub mod view;

use std::sync::{Arc, RwLock};

use geo::MultiPolygon;
use landdb_model::{FeedPosition, LandUseCode, NationalParcelId, ParcelKey, ParcelVersion, VersionId};
use landdb_store::{ChangeKind, ParcelStore, StoreError};

pub use snapshot::{Parcel, Snapshot, SnapshotBuilder};
pub use view::View;

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

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    File(#[from] file::FileError),
}

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
        let mut builder = SnapshotBuilder::default();
        let mut after = None;
        loop {
            let page = store.current_page(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for v in page {
                builder.push(&ParcelRecord::from(v));
            }
        }
        let engine = Engine::from_view(View::of(builder.finish(head)));
        engine.follow(store).await?;
        Ok(engine)
    }

    fn from_view(view: View) -> Self {
        Engine { current: RwLock::new(Arc::new(view)) }
    }

    /// Starts from a snapshot file written by [`Engine::save`], then follows the feed from the
    /// position it was written at: a restart without reading every parcel from the store.
    pub async fn open<S: ParcelStore>(store: &S, path: &std::path::Path) -> Result<Self, EngineError> {
        let engine = Engine::from_view(file::read(path)?);
        engine.follow(store).await?;
        Ok(engine)
    }

    /// Writes the current view to `path`, for [`Engine::open`].
    pub fn save(&self, path: &std::path::Path) -> Result<(), EngineError> {
        file::write(path, &self.snapshot())?;
        Ok(())
    }

    /// [`Engine::save`], telling `progress` the bytes written as they go; returns the file's size.
    pub fn save_reporting(&self, path: &std::path::Path, progress: &dyn Fn(u64)) -> Result<u64, EngineError> {
        Ok(file::write_reporting(path, &self.snapshot(), progress)?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Rect, polygon};
    use landdb_model::CommuneCode;

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

    fn versions(found: Vec<Parcel<'_>>) -> Vec<i64> {
        let mut v: Vec<i64> = found.iter().map(|p| p.version().0).collect();
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
                proptest::prop_assert_eq!(view.by_key(&key).map(|p| p.version()), Some(VersionId(*v)), "square {}", i);
                proptest::prop_assert!(view.by_version(VersionId(*v)).is_some());
            }
            // A batch answers point by point as single queries do, in order.
            let batch: Vec<(f64, f64)> = probes.clone();
            let answers = view.at_points(&batch);
            for ((x, y), found) in batch.iter().zip(answers) {
                proptest::prop_assert_eq!(versions(found), versions(view.at_point(*x, *y)));
            }
            let rects: Vec<Rect<f64>> = probes.iter().map(|(x, y)| Rect::new((*x, *y), (x + 2.5, y + 0.5))).collect();
            for (rect, found) in rects.iter().zip(view.in_boxes(&rects)) {
                proptest::prop_assert_eq!(versions(found), versions(view.in_box(*rect)));
            }
            // Keyset pages of any size walk every current parcel once, in version order.
            let all: Vec<i64> = view.parcels_after(None).map(|p| p.version().0).collect();
            let mut expected: Vec<i64> = current.values().copied().collect();
            expected.sort_unstable();
            proptest::prop_assert_eq!(&all, &expected);
            let mut paged = Vec::new();
            let mut after = None;
            loop {
                let page: Vec<i64> = view.parcels_after(after).take(7).map(|p| p.version().0).collect();
                let Some(last) = page.last() else { break };
                after = Some(VersionId(*last));
                paged.extend(page);
            }
            proptest::prop_assert_eq!(&paged, &expected);
            // And backwards from past the end.
            let mut back = Vec::new();
            let mut before = VersionId(i64::MAX);
            loop {
                let page: Vec<i64> = view.parcels_before(before).take(5).map(|p| p.version().0).collect();
                let Some(last) = page.last() else { break };
                before = VersionId(*last);
                back.extend(page);
            }
            back.reverse();
            proptest::prop_assert_eq!(back, expected);
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
    use landdb_model::CommuneCode;

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
            let mut all: Vec<(i64, f64)> = s.parcels().map(|p| (p.version().0, p.distance_m(lon, lat))).collect();
            all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            for d in [10.0, 100.0, 500.0, 2000.0] {
                let mut ours: Vec<i64> = s.within(lon, lat, d).iter().map(|(p, _)| p.version().0).collect();
                ours.sort_unstable();
                let mut brute: Vec<i64> = all.iter().filter(|(_, m)| *m <= d).map(|(v, _)| *v).collect();
                brute.sort_unstable();
                assert_eq!(ours, brute, "{d} m of ({lon}, {lat})");
            }
            let nearest: Vec<i64> = s.nearest(lon, lat, 7).iter().map(|(p, _)| p.version().0).collect();
            assert_eq!(nearest, all.iter().take(7).map(|(v, _)| *v).collect::<Vec<_>>(), "({lon}, {lat})");
        }
    }
}
