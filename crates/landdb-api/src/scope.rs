//! The parcels a caller may see: the one way a handler reaches parcels, and the one place where
//! parcels leave.
//!
//! [`Sources`] holds the engine and the store, in fields private to this module: a handler
//! cannot reach a parcel, current or past, except through a [`Scoped`] view made from the
//! caller's [`Access`]. Every method of `Scoped` yields only parcels in the caller's area, so a
//! parcel outside it does not exist for the caller: not in pages, counts, extents, lineage,
//! tiles or exports, and a request for it is answered as for one that was never there.
//!
//! Parcels leave through [`Scoped::release`] (and [`Scoped::release_selection`] for exports,
//! [`Scoped::release_versions`] for the history): it takes them from the caller's limits
//! (features a response, and a day, reserved atomically so that concurrent requests cannot
//! overdraw a quota) and makes the [`Disclosure`] the audit entry is written from. The writers of
//! answers (feature collections, tiles, exports) accept only what a release returned, and a
//! `Disclosure` can only be made here: a handler that forgets the rule does not compile.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use geo::Rect;
use landdb_access::{FollowedScope, Operation, Scope};
use landdb_engine::{Engine, Parcel, View};
use landdb_model::{
    CitizenId, CommuneCode, FeedPosition, NationalParcelId, ParcelKey, ParcelVersion, ReferenceData, VersionId,
};
use landdb_store::{AnyStore, DatabaseUrl, ParcelStore, Period};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};

use crate::access::Access;
use crate::export::Selection;
use crate::features::Field;
use crate::filter::{Filter, union};
use crate::ogc::ApiError;
use crate::params::BoxQuery;

mod feed;
pub use feed::{ChangePage, SnapshotGap, SnapshotPage};

/// Where parcels come from: the engine (current parcels) and the store (the history). Only
/// [`Sources::scoped`] opens them, for one caller.
#[derive(Debug)]
pub struct Sources {
    engine: Arc<Engine>,
    store: AnyStore,
    /// Where the store is, for the import workers that write uploads to it (see
    /// [`Sources::upload_store`]); none, and this process takes no uploads.
    store_url: Option<DatabaseUrl>,
    /// Set while the health watcher finds the store unreachable: what needs it is answered 503 at
    /// once rather than after the pool has waited for a connection (`health.rs`).
    store_away: AtomicBool,
    /// Each scoped caller's parcels by box (see [`Scoped::in_box`]).
    indexes: CallerCache<(), Arc<ScopeIndex>>,
    /// Each caller's commune outlines (see [`Scoped::outline`]).
    outlines: CallerCache<CommuneCode, Option<Arc<geo::Polygon<f64>>>>,
    /// Each caller's parcels of each commune, counted and boxed (see [`Scoped::commune_summary`]).
    summaries: CallerCache<CommuneCode, (usize, Option<Rect<f64>>)>,
    /// Each scoped caller's current versions in order (see [`Scoped::snapshot`]).
    orders: CallerCache<(), Arc<Vec<VersionId>>>,
    /// The key of the change feed's tokens, read from the store when first needed.
    feed_key: tokio::sync::OnceCell<crate::feed::FeedKey>,
    /// The scopes change-feed tokens were sealed under, by agency and fingerprint, compiled:
    /// each one this process knows the store keeps (see [`Sources::follow_scope`]).
    /// None: kept, but its area no longer compiles (a commune code no longer in the reference
    /// data).
    followed: Mutex<FollowedScopes>,
}

/// Followed scopes by agency and fingerprint (see [`Sources::followed_scope`]).
type FollowedScopes = HashMap<(String, u64), Option<Arc<Followed>>>;

/// A scope a follower's copy was made under, as a move from it needs it.
#[derive(Debug)]
pub struct Followed {
    pub personal_data: bool,
    pub scope: Scope,
}

/// What was worked out for a caller at a feed position, found by the caller's address and kept
/// with the caller itself: while an entry holds it, no other caller (made when the rules reload)
/// can be given that address and be answered from the entry. Callers are replaced when the
/// rules reload: past `limit` entries, all are forgotten.
struct CallerCache<K, V> {
    entries: Mutex<HashMap<(usize, K), Held<V>>>,
    limit: usize,
}

/// A cached value with the caller it is for and the feed position it was worked out at.
type Held<V> = (Arc<crate::access::Caller>, FeedPosition, V);

impl<K, V> std::fmt::Debug for CallerCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("CallerCache").field("entries", &held).field("limit", &self.limit).finish()
    }
}

impl<K: Eq + std::hash::Hash, V: Clone> CallerCache<K, V> {
    fn new(limit: usize) -> Self {
        CallerCache { entries: Mutex::new(HashMap::new()), limit }
    }

    /// The value for `caller` and `key` at `position`, worked out by `make` when there is none.
    fn get_or(
        &self,
        caller: &Arc<crate::access::Caller>,
        key: K,
        position: FeedPosition,
        make: impl FnOnce() -> V,
    ) -> V {
        let key = (Arc::as_ptr(caller) as usize, key);
        let lock = || self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((held, at, value)) = lock().get(&key)
            && Arc::ptr_eq(held, caller)
            && *at == position
        {
            return value.clone();
        }
        let value = make();
        let mut entries = lock();
        if entries.len() > self.limit {
            entries.clear();
        }
        entries.insert(key, (Arc::clone(caller), position, value.clone()));
        value
    }
}

/// Every parcel of `view` that `scope` sees, in no particular order.
fn in_scope<'v>(view: &'v View, scope: &Scope) -> Vec<Parcel<'v>> {
    match scope {
        Scope::Nation => view.parcels().collect(),
        Scope::Communes(set) => set.iter().flat_map(|c| view.in_commune(c)).collect(),
        Scope::Polygon { bounds, .. } => {
            let mut found = view.in_box(*bounds);
            found.retain(|p| scope.sees(p.commune(), || p.geometry()));
            found
        }
    }
}

/// The concave hull of the corners of the parcels' bounding boxes (kept in the engine: no
/// geometry is decoded), simplified to 0.00001° (about a metre).
fn outline_of(parcels: &[Parcel<'_>]) -> Option<geo::Polygon<f64>> {
    use geo::{ConcaveHull, Simplify};
    let points: geo::MultiPoint<f64> = parcels
        .iter()
        .filter_map(Parcel::bounds)
        .flat_map(|b| {
            let (min, max) = (b.min(), b.max());
            [(min.x, min.y), (max.x, min.y), (max.x, max.y), (min.x, max.y)]
        })
        .map(geo::Point::from)
        .collect();
    (points.0.len() >= 3).then(|| points.concave_hull().simplify(1e-5))
}

/// A scoped caller's parcels by box: built from the caller's parcels alone (once a feed position),
/// so that what a box query costs depends on the caller's parcels in it, never on the parcels
/// of others that lie there.
#[derive(Debug)]
struct ScopeIndex {
    extent: Option<Rect<f64>>,
    tree: RTree<GeomWithData<Rectangle<[f64; 2]>, i64>>,
}

impl Sources {
    pub fn new(engine: Arc<Engine>, store: AnyStore) -> Sources {
        Sources {
            engine,
            store,
            store_url: None,
            store_away: AtomicBool::new(false),
            indexes: CallerCache::new(1_000),
            outlines: CallerCache::new(10_000),
            summaries: CallerCache::new(100_000),
            orders: CallerCache::new(1_000),
            feed_key: tokio::sync::OnceCell::new(),
            followed: Mutex::new(HashMap::new()),
        }
    }

    /// What the health watcher found: whether the store answers.
    pub fn note_store_reachable(&self, reachable: bool) {
        self.store_away.store(!reachable, Ordering::Relaxed);
    }

    /// The store, unless it is known to be away (503).
    fn store(&self) -> Result<&AnyStore, ApiError> {
        if self.store_away.load(Ordering::Relaxed) { Err(ApiError::store_unavailable()) } else { Ok(&self.store) }
    }

    /// The key that seals change-feed tokens: the store's, made by the first server to ask, so
    /// that a token holds across restarts and across the servers of one database.
    pub async fn feed_key(&self) -> Result<&crate::feed::FeedKey, ApiError> {
        self.feed_key
            .get_or_try_init(|| async {
                let mut fresh = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut fresh);
                let secret = landdb_store::AccessStore::secret(self.store()?, crate::feed::token::KEY_PURPOSE, fresh)
                    .await
                    .map_err(|e| internal(&e))?;
                Ok(crate::feed::FeedKey::new(secret))
            })
            .await
    }

    /// The fingerprint of the caller's scope, which its change-feed tokens carry; the scope is
    /// kept in the store first (once a process), so that when the agency's policy changes, any
    /// server can move its followers' copies from it to the new one.
    pub async fn follow_scope(&self, access: &Access) -> Result<u64, ApiError> {
        let agency = &access.caller.agency;
        let scope = FollowedScope::of(&agency.policy);
        let fingerprint = scope.fingerprint();
        let key = (agency.name.clone(), fingerprint);
        if self.followed_lock().contains_key(&key) {
            return Ok(fingerprint);
        }
        landdb_store::AccessStore::remember_scope(self.store()?, &agency.name, &scope)
            .await
            .map_err(|e| internal(&e))?;
        let followed = Followed { personal_data: scope.personal_data, scope: access.caller.scope.clone() };
        self.keep_followed(key, Some(Arc::new(followed)));
        Ok(fingerprint)
    }

    /// The scope `agency`'s tokens fingerprinted `fingerprint` were sealed under, with it
    /// compiled; none when the store does not keep it or it no longer compiles.
    pub async fn followed_scope(
        &self,
        agency: &str,
        fingerprint: u64,
        reference: &ReferenceData,
    ) -> Result<Option<Arc<Followed>>, ApiError> {
        let key = (agency.to_owned(), fingerprint);
        if let Some(held) = self.followed_lock().get(&key).cloned() {
            return Ok(held);
        }
        let kept = landdb_store::AccessStore::remembered_scope(self.store()?, agency, fingerprint)
            .await
            .map_err(|e| internal(&e))?;
        let Some(kept) = kept else { return Ok(None) };
        let followed = Scope::compile(&kept.area, reference)
            .ok()
            .map(|scope| Arc::new(Followed { personal_data: kept.personal_data, scope }));
        self.keep_followed(key, followed.clone());
        Ok(followed)
    }

    fn followed_lock(&self) -> std::sync::MutexGuard<'_, FollowedScopes> {
        self.followed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn keep_followed(&self, key: (String, u64), followed: Option<Arc<Followed>>) {
        let mut held = self.followed_lock();
        if held.len() > 10_000 {
            held.clear();
        }
        held.insert(key, followed);
    }

    /// Where webhook subscriptions and their dead letters are kept (no parcel is reached
    /// through it: deliveries read parcels through [`Sources::scoped`] like any request).
    pub fn webhook_store(&self) -> Result<&AnyStore, ApiError> {
        self.store()
    }

    /// Uploads go to the store at `url` (the one this process opened), written by import workers.
    #[must_use]
    /// A citizen as the audit log names them: the blind index of `citizen_id` (as the request
    /// gave it) under the newest data key, never the ID (see `landdb audit subject`).
    pub fn subject_mark(&self, citizen_id: &str) -> String {
        match self.store.keyring().newest() {
            Ok(key) => key.subject_mark(citizen_id),
            Err(e) => {
                tracing::error!(error = %e, "no data key to name a citizen in the audit log with");
                "unavailable".to_owned()
            }
        }
    }

    pub fn taking_uploads(mut self, url: DatabaseUrl) -> Sources {
        self.store_url = Some(url);
        self
    }

    /// The parcels `access` may see, as the engine holds them now.
    pub fn scoped(&self, access: &Access) -> Scoped<'_> {
        Scoped { view: self.engine.snapshot(), access: access.clone(), sources: self }
    }

    /// The store, for the national operator's routes (agencies, keys, the audit log).
    pub fn operator_store(&self, access: &Access) -> Result<&AnyStore, ApiError> {
        Self::operator_only(access)?;
        self.store()
    }

    fn operator_only(access: &Access) -> Result<(), ApiError> {
        if access.is_operator() {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("only the national operator may do this, not agency {}", access.agency())))
        }
    }

    /// The store, for an upload of an agency that may upload, with the communes its writes are
    /// confined to (the import refuses or quarantines everything else; see `landdb_ingest::area`).
    pub fn upload_store(&self, access: &Access) -> Result<UploadStore<'_>, ApiError> {
        if !access.allows(Operation::Upload) {
            return Err(ApiError::forbidden(format!("agency {} may not upload", access.agency())));
        }
        let area = match &access.caller.scope {
            Scope::Nation => None,
            Scope::Communes(set) => Some(set.iter().map(|c| c.as_str().to_owned()).collect()),
            Scope::Polygon { .. } => {
                return Err(ApiError::forbidden(format!(
                    "agency {}'s area is a polygon; uploads are confined to provinces or communes",
                    access.agency()
                )));
            }
        };
        Ok(UploadStore { store: self.store()?, url: self.store_url.as_ref(), area })
    }

    /// The store's feed head and the position the engine reflects, for the health watcher.
    pub async fn feed_positions(&self) -> Result<(FeedPosition, FeedPosition), landdb_store::StoreError> {
        let head = self.store.feed_head().await?;
        Ok((head, self.engine.snapshot().position()))
    }

    /// Moves reads off a replica that does not answer; what reads go to now (`None` without
    /// replicas).
    pub async fn choose_replica(&self) -> Option<String> {
        self.store.choose_replica().await
    }

    /// How many changes the read replica has still to replay (`None` without a replica).
    pub async fn replica_lag(&self) -> Result<Option<i64>, landdb_store::StoreError> {
        self.store.replica_lag().await
    }

    /// `postgis` or `embedded`.
    pub fn store_kind(&self) -> &'static str {
        self.store.kind()
    }

    /// The engine's figures, for the operator's metrics.
    pub fn figures(&self, access: &Access) -> Result<EngineFigures, ApiError> {
        // The engine answers without the store: metrics go on while it is away.
        Self::operator_only(access)?;
        let view = self.engine.snapshot();
        Ok(EngineFigures { parcels: view.len(), position: view.position(), heap_bytes: view.heap_bytes() })
    }
}

/// The store as an uploading agency reaches it: its quarantine, and the connection and area an
/// import worker writes its upload with. Made only by [`Sources::upload_store`].
#[derive(Debug)]
pub struct UploadStore<'s> {
    pub store: &'s AnyStore,
    url: Option<&'s DatabaseUrl>,
    area: Option<Vec<String>>,
}

impl UploadStore<'_> {
    /// The connection string a worker opens (an embedded store's file by its absolute path: the
    /// worker runs in the job's directory).
    pub fn connection(&self) -> Result<String, ApiError> {
        match self.url {
            Some(DatabaseUrl::Postgres(raw)) => Ok(raw.clone()),
            Some(DatabaseUrl::Sqlite(path)) => {
                let path = std::path::absolute(path).map_err(|e| ApiError::internal(&e))?;
                Ok(format!("sqlite://{}", path.display()))
            }
            None => Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "NoUploads",
                "this server takes no uploads",
            )),
        }
    }

    /// The communes the upload may change; `None` for a national uploader.
    pub fn area(&self) -> Option<Vec<String>> {
        self.area.clone()
    }
}

/// What `/metrics` shows of the engine.
#[derive(Debug, Clone, Copy)]
pub struct EngineFigures {
    pub parcels: usize,
    pub position: FeedPosition,
    pub heap_bytes: usize,
}

/// The current parcels and the history, as one caller may see them.
#[derive(Debug)]
pub struct Scoped<'s> {
    view: Arc<View>,
    access: Access,
    sources: &'s Sources,
}

/// A page of the history read from the store: the versions the caller sees, and where reading
/// stopped.
#[derive(Debug)]
pub struct PastPage {
    pub visible: Vec<ParcelVersion>,
    /// The last version read (seen or not): where the next read starts.
    pub last: Option<VersionId>,
    /// Whether the store had no more.
    pub exhausted: bool,
}

/// One version of a parcel's history, with its lineage inside the caller's area.
#[derive(Debug)]
pub struct PastVersion {
    pub version: ParcelVersion,
    pub came_from: Vec<VersionId>,
    pub went_to: Vec<VersionId>,
}

fn internal(e: &landdb_store::StoreError) -> ApiError {
    ApiError::store(e)
}

impl<'s> Scoped<'s> {
    pub fn access(&self) -> &Access {
        &self.access
    }

    fn scope(&self) -> &Scope {
        &self.access.caller.scope
    }

    fn sees(&self, p: &Parcel<'_>) -> bool {
        self.access.sees(p)
    }

    /// Whether a stored version lies in the caller's area.
    fn sees_version(&self, v: &ParcelVersion) -> bool {
        self.scope().sees(&v.parcel.key.commune, || v.parcel.geometry.clone())
    }

    /// Whether the caller sees every parcel (no check a parcel needed).
    pub fn everything(&self) -> bool {
        self.scope().is_nation()
    }

    /// The feed position the view reflects (for reading the history at the same moment; never
    /// shown to a caller: it counts national changes).
    pub(crate) fn position(&self) -> FeedPosition {
        self.view.position()
    }

    /// The parcels that contain the point (boundary included), in version order.
    pub fn at_point(&self, lon: f64, lat: f64) -> Vec<Parcel<'_>> {
        let mut found = self.view.at_point(lon, lat);
        found.retain(|p| self.sees(p));
        found.sort_unstable_by_key(Parcel::version);
        found
    }

    /// The parcels that meet the box (boundary included). A scoped caller's come from its own
    /// index: a box over parcels the caller cannot see costs what an empty box costs.
    pub fn in_box(&self, rect: Rect<f64>) -> Vec<Parcel<'_>> {
        let Some(index) = self.index() else { return self.view.in_box(rect) };
        let envelope = AABB::from_corners([rect.min().x, rect.min().y], [rect.max().x, rect.max().y]);
        index
            .tree
            .locate_in_envelope_intersecting(&envelope)
            .filter_map(|e| self.view.by_version(VersionId(e.data)))
            .filter(|p| p.meets_box(rect))
            .collect()
    }

    /// The part of `rect` that can hold parcels of the caller.
    fn clip(&self, rect: Rect<f64>) -> Option<Rect<f64>> {
        if self.everything() {
            return Some(rect);
        }
        crate::filter::overlap(rect, self.extent()?)
    }

    /// The caller's index (`None` for a caller who sees everything: the engine's is theirs).
    fn index(&self) -> Option<Arc<ScopeIndex>> {
        if self.everything() {
            return None;
        }
        let index = self.sources.indexes.get_or(&self.access.caller, (), self.view.position(), || {
            let mut extent = None;
            let entries: Vec<GeomWithData<Rectangle<[f64; 2]>, i64>> = self
                .all()
                .into_iter()
                .filter_map(|p| {
                    let b = p.bounds()?;
                    extent = Some(extent.map_or(b, |e| union(e, b)));
                    Some(GeomWithData::new(
                        Rectangle::from_corners([b.min().x, b.min().y], [b.max().x, b.max().y]),
                        p.version().0,
                    ))
                })
                .collect();
            Arc::new(ScopeIndex { extent, tree: RTree::bulk_load(entries) })
        });
        Some(index)
    }

    /// Every parcel the caller sees, in no particular order: the scope's communes through the
    /// commune index (its cost is the scope's size, whatever lies around it), a polygon's through
    /// the R-tree.
    pub fn all(&self) -> Vec<Parcel<'_>> {
        in_scope(&self.view, self.scope())
    }

    /// Every parcel in version order after `after`, when the caller sees everything (the
    /// engine's sorted columns: no page costs more than its length). `None` for a scoped caller,
    /// whose pages come from [`Scoped::all`].
    pub fn everything_after(&self, after: Option<VersionId>) -> Option<impl Iterator<Item = Parcel<'_>>> {
        self.everything().then(|| self.view.parcels_after(after))
    }

    /// Every parcel in descending version order before `before`, when the caller sees everything.
    pub fn everything_before(&self, before: VersionId) -> Option<impl Iterator<Item = Parcel<'_>>> {
        self.everything().then(|| self.view.parcels_before(before))
    }

    /// Whether the caller sees no parcel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many parcels the caller sees.
    pub fn len(&self) -> usize {
        match self.scope() {
            Scope::Nation => self.view.len(),
            Scope::Communes(_) | Scope::Polygon { .. } => self.index().map_or(0, |i| i.tree.size()),
        }
    }

    /// The box around the parcels the caller sees.
    pub fn extent(&self) -> Option<Rect<f64>> {
        match self.index() {
            None => self.view.extent(),
            Some(index) => index.extent,
        }
    }

    pub fn by_version(&self, version: VersionId) -> Option<Parcel<'_>> {
        self.view.by_version(version).filter(|p| self.sees(p))
    }

    pub fn by_key(&self, key: &ParcelKey) -> Option<Parcel<'_>> {
        self.view.by_key(key).filter(|p| self.sees(p))
    }

    /// Current parcels with this national ID (normally one), in version order.
    pub fn by_national_id(&self, id: &NationalParcelId) -> Vec<Parcel<'_>> {
        let mut found = self.view.by_national_id(id);
        found.retain(|p| self.sees(p));
        found.sort_unstable_by_key(Parcel::version);
        found
    }

    /// The parcels of a 2025 commune the caller sees, those filed under the codes merged into it
    /// included.
    pub fn in_commune(&self, commune: &CommuneCode, reference: &ReferenceData) -> Vec<Parcel<'_>> {
        // A scope of communes is asked first, so that a commune outside it costs nothing, however
        // many parcels it holds.
        let codes: std::collections::BTreeSet<CommuneCode> =
            std::iter::once(commune.clone()).chain(reference.old_codes_merged_into(commune)).collect();
        let mut found: Vec<Parcel<'_>> = codes
            .into_iter()
            .filter(|c| match self.scope() {
                Scope::Communes(set) => set.contains(c),
                _ => true,
            })
            .flat_map(|c| self.view.in_commune(&c))
            .collect();
        if !self.everything() {
            found.retain(|p| self.sees(p));
        }
        found
    }

    /// How many of the caller's parcels a commune holds, and the box around them: what the
    /// communes collection shows and selects by. Cached for the caller until the feed moves (a
    /// box over the communes asks this of every commune in the country).
    pub fn commune_summary(&self, commune: &CommuneCode, reference: &ReferenceData) -> (usize, Option<Rect<f64>>) {
        self.sources.summaries.get_or(&self.access.caller, commune.clone(), self.view.position(), || {
            let parcels = self.in_commune(commune, reference);
            (parcels.len(), parcels.iter().filter_map(Parcel::bounds).reduce(union))
        })
    }

    /// The outline of the caller's parcels of a commune: the concave hull of their boxes' corners,
    /// simplified to about a metre; `None` when the caller sees none there. The reference data
    /// hold no commune boundaries: this is what the map draws for them, a picture of where the
    /// parcels lie, not a legal boundary. Cached for the caller until the feed moves.
    pub fn outline(&self, commune: &CommuneCode, reference: &ReferenceData) -> Option<Arc<geo::Polygon<f64>>> {
        self.sources.outlines.get_or(&self.access.caller, commune.clone(), self.view.position(), || {
            outline_of(&self.in_commune(commune, reference)).map(Arc::new)
        })
    }

    /// The parcels an export holds: of a commune (by its code as filed), in a box, matching a
    /// filter (a polygon is a spatial filter), or all of these; in version order.
    pub fn select(&self, commune: Option<&CommuneCode>, bbox: Option<BoxQuery>, filter: Option<&Filter>) -> Selection {
        // The box the selection lies in: the request's, the filter's, or the part they share
        // (`disjoint` when they share nothing).
        let (region, disjoint) = match (bbox.map(|b| b.hull()), filter.and_then(|f| f.bound)) {
            (Some(a), Some(b)) => {
                let shared = crate::filter::overlap(a, b);
                (shared, shared.is_none())
            }
            (a, b) => (a.or(b), false),
        };
        if disjoint {
            return Selection::Versions(Vec::new());
        }
        // A box across the antimeridian is two: its hull is asked first, then each parcel.
        let two_boxes = bbox.filter(|b| !b.is_one_box());
        let keep = |p: &Parcel<'_>| {
            commune.is_none_or(|c| p.commune() == c)
                && filter.is_none_or(|f| f.matches(p, None))
                && two_boxes.is_none_or(|b| b.meets(&p.geometry()))
        };
        let mut versions: Vec<VersionId> = match (commune, region) {
            (None, None) if filter.is_none() && self.everything() => return Selection::All,
            // A commune outside a scope of communes holds nothing for the caller, at no cost.
            (Some(c), None) if matches!(self.scope(), Scope::Communes(set) if !set.contains(c)) => Vec::new(),
            (Some(c), None) => {
                self.view.in_commune(c).into_iter().filter(|p| self.sees(p) && keep(p)).map(|p| p.version()).collect()
            }
            (_, Some(b)) => self.in_box(b).into_iter().filter(|p| keep(p)).map(|p| p.version()).collect(),
            (None, None) => self.all().into_iter().filter(|p| keep(p)).map(|p| p.version()).collect(),
        };
        versions.sort_unstable();
        Selection::Versions(versions)
    }

    /// A version from the store, current or not, when the caller sees it. A version outside the
    /// caller's area and one that never existed are the same `None`, after the same work.
    pub async fn version(&self, version: VersionId) -> Result<Option<ParcelVersion>, ApiError> {
        let found = self.sources.store()?.version(version).await.map_err(|e| internal(&e))?;
        Ok(found.filter(|v| self.sees_version(v)))
    }

    /// The versions that held the point at `when` that the caller sees.
    pub async fn at_point_on(
        &self,
        lon: f64,
        lat: f64,
        when: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<ParcelVersion>, ApiError> {
        let mut found = self.sources.store()?.at_point_on(lon, lat, when).await.map_err(|e| internal(&e))?;
        found.retain(|v| self.sees_version(v));
        Ok(found)
    }

    /// Versions valid during `period` in version order after `after` (at most `limit` read),
    /// keeping those the caller sees.
    pub async fn valid_during(
        &self,
        period: Period,
        region: Option<Rect<f64>>,
        after: Option<VersionId>,
        limit: usize,
    ) -> Result<PastPage, ApiError> {
        let region = match region {
            Some(r) => Some(self.clip(r).unwrap_or_else(crate::filter::nowhere)),
            None if self.everything() => None,
            None => Some(self.scope_bounds()),
        };
        let rows = self.sources.store()?.valid_during(period, region, after, limit).await.map_err(|e| internal(&e))?;
        let exhausted = rows.len() < limit;
        let last = rows.last().map(|v| v.id);
        let visible = rows.into_iter().filter(|v| self.sees_version(v)).collect();
        Ok(PastPage { visible, last, exhausted })
    }

    /// Where the caller's parcels can be, past ones included: the polygon's bounds, or the box
    /// around its current parcels (a scope of communes whose parcels all moved away still has its
    /// history answered, read over the whole country and filtered).
    fn scope_bounds(&self) -> Rect<f64> {
        match self.scope() {
            Scope::Polygon { bounds, .. } => *bounds,
            _ => Rect::new((-180.0, -90.0), (180.0, 90.0)),
        }
    }

    /// Every version of the parcel that `version` is a version of, oldest first, the caller
    /// sees; with lineage only inside the caller's area. `None` when the caller does not see
    /// `version` (or it never existed: both take the same two reads of the store).
    pub async fn history(&self, version: VersionId) -> Result<Option<Vec<PastVersion>>, ApiError> {
        let this = self.version(version).await?;
        // The same second read whether the version is seen or not, so that time does not tell
        // the two apart.
        let nobody = ParcelKey::new(
            CommuneCode::parse("00000").map_err(|e| ApiError::internal(&e))?,
            String::new(),
            String::new(),
        );
        let key = this.as_ref().map_or(&nobody, |v| &v.parcel.key);
        let all = self.sources.store()?.history(key).await.map_err(|e| internal(&e))?;
        if this.is_none() {
            return Ok(None);
        }
        let versions: Vec<ParcelVersion> = all.into_iter().filter(|v| self.sees_version(v)).collect();
        let mut out = Vec::with_capacity(versions.len());
        for v in versions {
            let successors = self.sources.store()?.successors(v.id).await.map_err(|e| internal(&e))?;
            let came_from = self.visible_versions(&v.lineage).await?;
            let went_to = self.visible_versions(&successors).await?;
            out.push(PastVersion { version: v, came_from, went_to });
        }
        Ok(Some(out))
    }

    /// The versions whose right holders include `citizen` that the caller sees: current ones,
    /// and earlier ones too when `past` is asked. Found by the citizen's blind index; the same
    /// reads whether any of them is in the caller's area or not.
    pub async fn held_by(&self, citizen: &CitizenId, past: bool) -> Result<Vec<ParcelVersion>, ApiError> {
        let store = self.sources.store()?;
        let ids = store.versions_held_by(citizen).await.map_err(|e| internal(&e))?;
        let found = store.versions(&ids).await.map_err(|e| internal(&e))?;
        Ok(found.into_iter().filter(|v| (past || v.valid_to.is_none()) && self.sees_version(v)).collect())
    }

    /// The versions among `ids` the caller sees: lineage never names a version outside the area.
    async fn visible_versions(&self, ids: &[VersionId]) -> Result<Vec<VersionId>, ApiError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.sources.store()?.versions(ids).await.map_err(|e| internal(&e))?;
        Ok(found.iter().filter(|v| self.sees_version(v)).map(|v| v.id).collect())
    }

    /// Hands `parcels` over for an answer with `fields`: they are taken from the caller's limits
    /// (refused whole when they would pass the features a response or what is left of today's
    /// quota) and put on record.
    pub async fn release<'a>(&self, parcels: Vec<Parcel<'a>>, fields: &[Field]) -> Result<Release<'a>, ApiError> {
        self.access.take(parcels.len() as u64, false).await?;
        let disclosure = Disclosure::of(&parcels, fields.iter().any(|f| f.is_personal()));
        Ok(Release { parcels, disclosure })
    }

    /// Hands over the parcels a lookup by citizen found: as [`Scoped::release`], and every one
    /// is a disclosure of personal data whatever the fields (it says whose parcel it is).
    pub async fn release_held<'a>(&self, parcels: Vec<Parcel<'a>>, fields: &[Field]) -> Result<Release<'a>, ApiError> {
        self.access.take(parcels.len() as u64, false).await?;
        let mut disclosure = Disclosure::of(&parcels, fields.iter().any(|f| f.is_personal()));
        disclosure.personal = disclosure.versions.clone();
        Ok(Release { parcels, disclosure })
    }

    /// Hands an export's selection over: as [`Scoped::release`], but an agency granted bulk
    /// export may take more than a response's limit (never more than its daily quota).
    pub async fn release_selection(
        &self,
        selection: Selection,
        fields: &[Field],
    ) -> Result<ReleasedSelection, ApiError> {
        let count = selection.len(&self.view);
        self.access.take(count as u64, self.access.allows(Operation::BulkExport)).await?;
        let personal_fields = fields.iter().any(|f| f.is_personal());
        let mut disclosure = Disclosure::default();
        selection.for_each(&self.view, |p| disclosure.add(&p, personal_fields));
        Ok(ReleasedSelection { view: Arc::clone(&self.view), selection, disclosure: Some(disclosure) })
    }

    /// Hands over versions of the history (their numbers, times and areas; no personal data).
    pub async fn release_versions(&self, versions: &[&ParcelVersion]) -> Result<Disclosure, ApiError> {
        self.access.take(versions.len() as u64, false).await?;
        let mut communes: DisclosedCommunes = versions.iter().map(|v| v.parcel.key.commune.number()).collect();
        communes.sort_unstable();
        communes.dedup();
        Ok(Disclosure {
            parcels: versions.len() as u64,
            personal: Disclosed::new(),
            versions: versions.iter().map(|v| v.id.0).collect(),
            communes,
        })
    }
}

/// Parcels handed over for an answer: what the answer writers take.
#[derive(Debug)]
pub struct Release<'a> {
    parcels: Vec<Parcel<'a>>,
    disclosure: Disclosure,
}

impl<'a> Release<'a> {
    pub fn parcels(&self) -> &[Parcel<'a>] {
        &self.parcels
    }

    /// What the answer discloses, to put on the response once the parcels are written.
    pub fn into_disclosure(self) -> Disclosure {
        self.disclosure
    }
}

/// An export's selection, handed over: the view it is read from and what it discloses.
#[derive(Debug)]
pub struct ReleasedSelection {
    view: Arc<View>,
    selection: Selection,
    disclosure: Option<Disclosure>,
}

impl ReleasedSelection {
    pub fn view(&self) -> &View {
        &self.view
    }

    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// How many parcels it holds.
    pub fn len(&self) -> usize {
        self.selection.len(&self.view)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What it discloses (taken once, to put on the response).
    pub fn take_disclosure(&mut self) -> Disclosure {
        self.disclosure.take().unwrap_or_default()
    }
}

/// What an answer disclosed, for the audit log: put on the response (an extension) and read by
/// [`crate::access::Pass::record`]. Made only by a release.
/// Its lists hold a few items in place (a lookup's one or two parcels allocate nothing).
#[derive(Debug, Clone, Default)]
pub struct Disclosure {
    parcels: u64,
    /// The versions whose personal data the answer held.
    personal: Disclosed,
    /// Every version the answer held.
    versions: Disclosed,
    /// The communes of those versions (by number), each once: what the audit log is indexed by.
    communes: DisclosedCommunes,
}

/// Versions of a disclosure: a few in place.
type Disclosed = smallvec::SmallVec<[i64; 4]>;
/// Communes of a disclosure: a few in place.
type DisclosedCommunes = smallvec::SmallVec<[u32; 4]>;

impl Disclosure {
    fn of(parcels: &[Parcel<'_>], personal_fields: bool) -> Disclosure {
        let mut d = Disclosure { versions: Disclosed::with_capacity(parcels.len()), ..Disclosure::default() };
        for p in parcels {
            d.add(p, personal_fields);
        }
        d
    }

    fn add(&mut self, p: &Parcel<'_>, personal_fields: bool) {
        self.parcels += 1;
        self.versions.push(p.version().0);
        // An answer's parcels come in runs of one commune: each run once, made unique at the end.
        let commune = p.commune().number();
        if self.communes.last() != Some(&commune) {
            self.communes.push(commune);
        }
        if personal_fields && let Some(v) = Disclosure::personal_of(p) {
            self.personal.push(v);
        }
    }

    /// The version of `parcel` when sending its personal fields discloses personal data (it has
    /// some): what the audit entry lists.
    fn personal_of(parcel: &Parcel<'_>) -> Option<i64> {
        parcel.has_address().then(|| parcel.version().0)
    }

    pub fn parcels(&self) -> u64 {
        self.parcels
    }

    pub fn personal(&self) -> &[i64] {
        &self.personal
    }

    pub fn versions(&self) -> &[i64] {
        &self.versions
    }

    /// A disclosure as a release would make it, for the audit writer's tests.
    #[cfg(test)]
    pub(crate) fn of_parts(parcels: u64, personal: Vec<i64>, versions: Vec<i64>, communes: Vec<u32>) -> Disclosure {
        Disclosure { parcels, personal: personal.into(), versions: versions.into(), communes: communes.into() }
    }

    pub(crate) fn into_parts(mut self) -> (u64, Disclosed, Disclosed, DisclosedCommunes) {
        if self.communes.len() > 1 {
            self.communes.sort_unstable();
            self.communes.dedup();
        }
        (self.parcels, self.personal, self.versions, self.communes)
    }

    pub fn on(self, mut response: axum::response::Response) -> axum::response::Response {
        response.extensions_mut().insert(self);
        response
    }
}
