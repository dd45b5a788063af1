//! Where parcels live. [`ParcelStore`] is the one interface; [`postgres::PgStore`] (PostGIS, the
//! system of record) and [`sqlite::SqliteStore`] (the embedded default) implement it with the same
//! behaviour, and [`AnyStore`] picks one from a database URL.
//!
//! Writes happen only inside an import batch ([`BatchWriter`]): it commits whole or not at all, and
//! its changes reach the change feed in commit order, which is how every running landdb process
//! follows what changed.

pub mod access;
mod any;
pub mod data_keys;
mod database_url;
mod error;
mod fingerprint;
mod geometry;
mod migrations;
pub mod postgres;
mod row;
pub mod sqlite;

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use landdb_model::{
    BatchId, CitizenId, CommuneCode, FeedPosition, NationalParcelId, Parcel, ParcelKey, ParcelVersion, RightHolder,
    VersionId,
};
use serde::{Deserialize, Serialize};

pub use access::{AccessStore, AskedParcel, AuditQuery};
pub use any::{AnyBatch, AnyStore, AnyWaiter};
pub use database_url::DatabaseUrl;
pub use error::{Result, StoreError};
pub use fingerprint::fingerprint;

/// What an import batch is, recorded when it begins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewBatch {
    /// Where the data came from: file names, upload ID.
    pub source: String,
    pub province_code: Option<String>,
    /// Hash of the uploaded content, so that re-uploading it can be recognised.
    pub content_hash: Option<String>,
    /// `append` or `replace-commune`.
    pub mode: String,
}

/// A committed import batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchInfo {
    pub id: BatchId,
    pub source: String,
    pub province_code: Option<String>,
    pub content_hash: Option<String>,
    pub mode: String,
    pub started_at: DateTime<Utc>,
    pub committed_at: Option<DateTime<Utc>>,
    pub summary: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// A version became current.
    Created,
    /// A version stopped being current.
    Retired,
}

impl ChangeKind {
    fn parse(raw: &str) -> Result<Self> {
        match raw {
            "created" => Ok(Self::Created),
            "retired" => Ok(Self::Retired),
            other => Err(StoreError::Corrupt(format!("unknown change kind {other:?}"))),
        }
    }
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParcelChange {
    pub position: FeedPosition,
    pub batch: BatchId,
    pub kind: ChangeKind,
    pub version: VersionId,
    pub national_id: NationalParcelId,
    pub commune: String,
}

/// A record an import rejected, kept with its reasons and its source as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantinedRecord {
    pub file: String,
    pub layer: String,
    /// 1-based position in its layer.
    pub feature: i32,
    /// `commune/sheet/number`, when the record had a key.
    pub parcel_key: Option<String>,
    pub reasons: serde_json::Value,
    /// Attributes and raw rings (source CRS) as read.
    pub source: serde_json::Value,
}

/// A current parcel's key, version and content fingerprint: what a replacing upload compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentEntry {
    pub key: ParcelKey,
    pub version: VersionId,
    pub fingerprint: String,
}

pub(crate) fn current_entry(
    id: i64,
    commune: String,
    sheet: String,
    number: String,
    fingerprint: String,
) -> Result<CurrentEntry> {
    let commune = CommuneCode::parse(&commune).map_err(|e| StoreError::Corrupt(format!("parcel version {id}: {e}")))?;
    Ok(CurrentEntry { key: ParcelKey::new(commune, sheet, number), version: VersionId(id), fingerprint })
}

/// A period of time, both ends included; `None` is open (`..` in OGC API). A single instant is a
/// period whose ends are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Period {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// The store. Reads never include right holders (personal data): ask for them with
/// [`ParcelStore::right_holders`], so that withholding them is one decision in one place.
pub trait ParcelStore: Send + Sync {
    type Batch: BatchWriter;
    type Waiter: FeedWaiter;

    /// Starts an import batch. Nothing it writes is visible until [`BatchWriter::commit`].
    fn begin_batch(&self, batch: NewBatch) -> impl Future<Output = Result<Self::Batch>> + Send;

    fn version(&self, id: VersionId) -> impl Future<Output = Result<Option<ParcelVersion>>> + Send;
    /// The versions among `ids` that exist, in ID order: one round trip for a page of the feed.
    fn versions(&self, ids: &[VersionId]) -> impl Future<Output = Result<Vec<ParcelVersion>>> + Send;
    fn current_by_key(&self, key: &ParcelKey) -> impl Future<Output = Result<Option<ParcelVersion>>> + Send;
    /// Current versions with this national ID (normally one).
    fn current_by_national_id(&self, id: &NationalParcelId) -> impl Future<Output = Result<Vec<ParcelVersion>>> + Send;
    /// The versions that contained the point (longitude, latitude; boundary included) at `when`:
    /// "which parcel was here on that date", answered from the history.
    fn at_point_on(
        &self,
        lon: f64,
        lat: f64,
        when: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<ParcelVersion>>> + Send;
    /// The versions, in ID order after `after` and at most `limit`, that were valid at some
    /// instant of `period` (both ends included; an open end is unbounded) and whose boundary
    /// meets `bbox` (longitude/latitude) when one is given: what `datetime` asks of the history.
    fn valid_during(
        &self,
        period: Period,
        bbox: Option<geo::Rect<f64>>,
        after: Option<VersionId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ParcelVersion>>> + Send;
    /// Every version that ever had this natural key, oldest first.
    fn history(&self, key: &ParcelKey) -> impl Future<Output = Result<Vec<ParcelVersion>>> + Send;
    /// The versions that came from this one (its successors after an update, split or merge).
    fn successors(&self, id: VersionId) -> impl Future<Output = Result<Vec<VersionId>>> + Send;
    /// The versions made from any of `parents`, as (parent, child) pairs: lineage read forwards
    /// for many versions at once.
    fn children_of(&self, parents: &[VersionId]) -> impl Future<Output = Result<Vec<(VersionId, VersionId)>>> + Send;
    fn right_holders(&self, id: VersionId) -> impl Future<Output = Result<Vec<RightHolder>>> + Send;
    /// Every version, current or past, with a right holder who carries this citizen ID: found
    /// by its blind index (the ID itself is nowhere in the store), in ID order.
    fn versions_held_by(&self, citizen: &CitizenId) -> impl Future<Output = Result<Vec<VersionId>>> + Send;
    /// Makes a new data key and reseals every right holder and quarantined record under it while
    /// the store stays in use (see [`data_keys`]).
    fn rotate_data_key(&self) -> impl Future<Output = Result<data_keys::Rotation>> + Send;
    /// Current versions in ID order after `after`, at most `limit`: keyset paging, for loading
    /// every current parcel in bounded memory.
    fn current_page(
        &self,
        after: Option<VersionId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ParcelVersion>>> + Send;
    fn count_current(&self) -> impl Future<Output = Result<u64>> + Send;
    /// Every current parcel of these communes (by the commune code of their key).
    fn current_in_communes(&self, communes: &[CommuneCode]) -> impl Future<Output = Result<Vec<CurrentEntry>>> + Send;
    /// The records a batch quarantined, in order.
    fn quarantined(&self, batch: BatchId) -> impl Future<Output = Result<Vec<QuarantinedRecord>>> + Send;

    fn batch(&self, id: BatchId) -> impl Future<Output = Result<Option<BatchInfo>>> + Send;
    fn batch_by_content_hash(&self, hash: &str) -> impl Future<Output = Result<Option<BatchInfo>>> + Send;
    /// The last committed batch whose source is `source`.
    fn latest_batch_of(&self, source: &str) -> impl Future<Output = Result<Option<BatchInfo>>> + Send;

    /// Changes after `after`, in feed order, at most `limit`.
    fn changes_since(
        &self,
        after: FeedPosition,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ParcelChange>>> + Send;
    /// The position of the last change (0 for an empty feed).
    fn feed_head(&self) -> impl Future<Output = Result<FeedPosition>> + Send;
    /// Refreshes the planner's statistics of the parcel tables. After a large import the planner
    /// otherwise takes them for their old size until autovacuum comes round: a point query then
    /// scanned a whole index, and loading a million parcels took 86 s instead of 13 s.
    fn analyze(&self) -> impl Future<Output = Result<()>> + Send;
    /// Something to wait on for new changes. Create it before reading the feed, then wait on it
    /// between reads, and no change is missed.
    fn feed_waiter(&self) -> impl Future<Output = Result<Self::Waiter>> + Send;
}

/// The writes of one import batch, inside one database transaction.
pub trait BatchWriter: Send {
    fn id(&self) -> BatchId;
    /// When the batch's changes take effect (`valid_from` of its versions, `valid_to` of those it
    /// retires).
    fn effective_at(&self) -> DateTime<Utc>;

    /// Adds new parcels through the bulk path. A parcel whose natural key has a current version is
    /// refused with [`StoreError::CurrentParcelExists`] (the batch must then be rolled back): an
    /// existing parcel changes only through [`BatchWriter::supersede`].
    fn insert(&mut self, parcels: &[Parcel]) -> impl Future<Output = Result<Vec<VersionId>>> + Send;
    /// Adds a new version that replaces `replaces` (one for an update, several for a merge; a split
    /// supersedes the same parent more than once). Each replaced version must be current, or retired
    /// by this batch.
    fn supersede(&mut self, parcel: &Parcel, replaces: &[VersionId]) -> impl Future<Output = Result<VersionId>> + Send;
    /// Ends the validity of current versions (a parcel absent from a replacing upload).
    fn retire(&mut self, versions: &[VersionId]) -> impl Future<Output = Result<()>> + Send;
    /// Takes back versions this batch wrote, as if they had never been written: their right
    /// holders and lineage go with them, and versions they superseded are current again. Returns
    /// the parcels taken back (right holders included), so that nothing is lost: an import that
    /// streams parcels in and learns only at the end that a key occurred twice quarantines them.
    fn withdraw(&mut self, versions: &[VersionId]) -> impl Future<Output = Result<Vec<Parcel>>> + Send;
    /// Keeps rejected records with the batch.
    fn quarantine(&mut self, records: &[QuarantinedRecord]) -> impl Future<Output = Result<()>> + Send;
    /// Makes everything visible at once and appends it to the change feed. `summary` is kept
    /// with the batch; its `province` member sets the batch's province if it had none.
    fn commit(self, summary: serde_json::Value) -> impl Future<Output = Result<BatchInfo>> + Send;
    /// Discards everything the batch wrote (dropping the writer does the same).
    fn rollback(self) -> impl Future<Output = Result<()>> + Send;
}

/// Waits for the change feed to move.
pub trait FeedWaiter: Send {
    /// Returns when a change may have been committed since the last call, or after `timeout`.
    fn wait(&mut self, timeout: Duration) -> impl Future<Output = Result<()>> + Send;
}
