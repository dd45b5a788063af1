//! The store chosen at run time from a database URL: PostGIS or the embedded SQLite store.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use landdb_model::{
    BatchId, CitizenId, CommuneCode, FeedPosition, NationalParcelId, Parcel, ParcelKey, ParcelVersion, RightHolder,
    VersionId,
};

use landdb_access::FollowedScope;
use landdb_access::webhook::{DeadLetter, Subscription};

use crate::data_keys::{Keyring, Rotation};
use crate::postgres::{PgBatch, PgStore, PgWaiter};
use crate::sqlite::{PollingWaiter, SqliteBatch, SqliteStore};
use crate::{
    BatchInfo, BatchWriter, CurrentEntry, DatabaseUrl, FeedWaiter, NewBatch, ParcelChange, ParcelStore, Period,
    QuarantinedRecord, Result,
};

#[derive(Debug, Clone)]
pub enum AnyStore {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

impl AnyStore {
    /// Opens the store `url` names, creating the embedded file or migrating PostGIS as needed.
    /// Right holders are sealed under the process's keyring ([`Keyring::located`]).
    pub async fn open(url: &DatabaseUrl) -> Result<Self> {
        AnyStore::open_with(url, Keyring::located()?).await
    }

    /// As [`AnyStore::open`], right holders sealed under `keyring`'s keys.
    pub async fn open_with(url: &DatabaseUrl, keyring: Arc<Keyring>) -> Result<Self> {
        Ok(match url {
            DatabaseUrl::Postgres(raw) => Self::Postgres(PgStore::connect_with(raw, keyring).await?),
            DatabaseUrl::Sqlite(path) => Self::Sqlite(SqliteStore::open_with(path, keyring).await?),
        })
    }

    /// As [`AnyStore::open`], with parcels, history and the change feed read from `reads`,
    /// streaming standbys of the PostGIS primary `url` (see [`PgStore::with_replicas`]).
    pub async fn open_with_replicas(url: &DatabaseUrl, reads: &[DatabaseUrl]) -> Result<Self> {
        let mut raw = Vec::new();
        for read in reads {
            match read {
                DatabaseUrl::Postgres(r) => raw.push(r.as_str()),
                DatabaseUrl::Sqlite(_) => {
                    return Err(crate::StoreError::Replica {
                        url: read.to_string(),
                        reason:
                            "a read replica is a PostgreSQL standby of a PostGIS primary; the embedded store has none"
                                .into(),
                    });
                }
            }
        }
        match AnyStore::open(url).await? {
            Self::Postgres(primary) => Ok(Self::Postgres(primary.with_replicas(&raw).await?)),
            Self::Sqlite(_) => Err(crate::StoreError::Replica {
                url: reads.first().map(ToString::to_string).unwrap_or_default(),
                reason: "the embedded store has no replicas: give a PostGIS primary as --database".into(),
            }),
        }
    }

    /// Moves reads off a replica that does not answer; what reads go to now (`None` without
    /// replicas).
    pub async fn choose_replica(&self) -> Option<String> {
        match self {
            Self::Postgres(s) => s.choose_replica().await,
            Self::Sqlite(_) => None,
        }
    }

    /// The last migration applied to the schema.
    pub async fn schema_version(&self) -> Result<i64> {
        let sql = "SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success";
        Ok(match self {
            Self::Postgres(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await?,
            Self::Sqlite(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await?,
        })
    }

    /// How far the read replica's change feed is behind the primary's, in changes; `None`
    /// without a replica.
    pub async fn replica_lag(&self) -> Result<Option<i64>> {
        match self {
            Self::Postgres(s) if s.has_replica() => s.replica_lag().await.map(Some),
            _ => Ok(None),
        }
    }

    /// The keyring right holders are sealed under.
    pub fn keyring(&self) -> &Arc<Keyring> {
        match self {
            Self::Postgres(s) => s.keyring(),
            Self::Sqlite(s) => s.keyring(),
        }
    }

    /// `postgis` or `embedded`, for logs and health reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgis",
            Self::Sqlite(_) => "embedded",
        }
    }
}

#[derive(Debug)]
pub enum AnyBatch {
    Postgres(PgBatch),
    Sqlite(SqliteBatch),
}

#[derive(Debug)]
pub enum AnyWaiter {
    Postgres(PgWaiter),
    Sqlite(PollingWaiter),
}

/// Calls the same method on whichever backend `$self` holds.
macro_rules! dispatch {
    ($self:expr, $inner:ident => $call:expr) => {
        match $self {
            Self::Postgres($inner) => $call,
            Self::Sqlite($inner) => $call,
        }
    };
}

impl ParcelStore for AnyStore {
    type Batch = AnyBatch;
    type Waiter = AnyWaiter;

    async fn begin_batch(&self, batch: NewBatch) -> Result<AnyBatch> {
        Ok(match self {
            Self::Postgres(s) => AnyBatch::Postgres(s.begin_batch(batch).await?),
            Self::Sqlite(s) => AnyBatch::Sqlite(s.begin_batch(batch).await?),
        })
    }
    async fn version(&self, id: VersionId) -> Result<Option<ParcelVersion>> {
        dispatch!(self, s => s.version(id).await)
    }
    async fn versions(&self, ids: &[VersionId]) -> Result<Vec<ParcelVersion>> {
        dispatch!(self, s => s.versions(ids).await)
    }
    async fn at_point_on(&self, lon: f64, lat: f64, when: DateTime<Utc>) -> Result<Vec<ParcelVersion>> {
        dispatch!(self, s => s.at_point_on(lon, lat, when).await)
    }
    async fn valid_during(
        &self,
        period: Period,
        bbox: Option<geo::Rect<f64>>,
        after: Option<VersionId>,
        limit: usize,
    ) -> Result<Vec<ParcelVersion>> {
        dispatch!(self, s => s.valid_during(period, bbox, after, limit).await)
    }
    async fn analyze(&self) -> Result<()> {
        dispatch!(self, s => s.analyze().await)
    }
    async fn current_by_key(&self, key: &ParcelKey) -> Result<Option<ParcelVersion>> {
        dispatch!(self, s => s.current_by_key(key).await)
    }
    async fn current_by_national_id(&self, id: &NationalParcelId) -> Result<Vec<ParcelVersion>> {
        dispatch!(self, s => s.current_by_national_id(id).await)
    }
    async fn history(&self, key: &ParcelKey) -> Result<Vec<ParcelVersion>> {
        dispatch!(self, s => s.history(key).await)
    }
    async fn successors(&self, id: VersionId) -> Result<Vec<VersionId>> {
        dispatch!(self, s => s.successors(id).await)
    }
    async fn children_of(&self, parents: &[VersionId]) -> Result<Vec<(VersionId, VersionId)>> {
        dispatch!(self, s => s.children_of(parents).await)
    }
    async fn right_holders(&self, id: VersionId) -> Result<Vec<RightHolder>> {
        dispatch!(self, s => s.right_holders(id).await)
    }
    async fn versions_held_by(&self, citizen: &CitizenId) -> Result<Vec<VersionId>> {
        dispatch!(self, s => s.versions_held_by(citizen).await)
    }
    async fn rotate_data_key(&self) -> Result<Rotation> {
        dispatch!(self, s => s.rotate_data_key().await)
    }
    async fn current_page(&self, after: Option<VersionId>, limit: usize) -> Result<Vec<ParcelVersion>> {
        dispatch!(self, s => s.current_page(after, limit).await)
    }
    async fn count_current(&self) -> Result<u64> {
        dispatch!(self, s => s.count_current().await)
    }
    async fn current_in_communes(&self, communes: &[CommuneCode]) -> Result<Vec<CurrentEntry>> {
        dispatch!(self, s => s.current_in_communes(communes).await)
    }
    async fn quarantined(&self, batch: BatchId) -> Result<Vec<QuarantinedRecord>> {
        dispatch!(self, s => s.quarantined(batch).await)
    }
    async fn batch(&self, id: BatchId) -> Result<Option<BatchInfo>> {
        dispatch!(self, s => s.batch(id).await)
    }
    async fn latest_batch_of(&self, source: &str) -> Result<Option<BatchInfo>> {
        dispatch!(self, s => s.latest_batch_of(source).await)
    }

    async fn batch_by_content_hash(&self, hash: &str) -> Result<Option<BatchInfo>> {
        dispatch!(self, s => s.batch_by_content_hash(hash).await)
    }
    async fn changes_since(&self, after: FeedPosition, limit: usize) -> Result<Vec<ParcelChange>> {
        dispatch!(self, s => s.changes_since(after, limit).await)
    }
    async fn feed_head(&self) -> Result<FeedPosition> {
        dispatch!(self, s => s.feed_head().await)
    }
    async fn feed_waiter(&self) -> Result<AnyWaiter> {
        Ok(match self {
            Self::Postgres(s) => AnyWaiter::Postgres(s.feed_waiter().await?),
            Self::Sqlite(s) => AnyWaiter::Sqlite(s.feed_waiter().await?),
        })
    }
}

impl BatchWriter for AnyBatch {
    fn id(&self) -> BatchId {
        dispatch!(self, b => b.id())
    }
    fn effective_at(&self) -> DateTime<Utc> {
        dispatch!(self, b => b.effective_at())
    }
    async fn insert(&mut self, parcels: &[Parcel]) -> Result<Vec<VersionId>> {
        dispatch!(self, b => b.insert(parcels).await)
    }
    async fn supersede(&mut self, parcel: &Parcel, replaces: &[VersionId]) -> Result<VersionId> {
        dispatch!(self, b => b.supersede(parcel, replaces).await)
    }
    async fn retire(&mut self, versions: &[VersionId]) -> Result<()> {
        dispatch!(self, b => b.retire(versions).await)
    }
    async fn withdraw(&mut self, versions: &[VersionId]) -> Result<Vec<Parcel>> {
        dispatch!(self, b => b.withdraw(versions).await)
    }
    async fn quarantine(&mut self, records: &[QuarantinedRecord]) -> Result<()> {
        dispatch!(self, b => b.quarantine(records).await)
    }
    async fn commit(self, summary: serde_json::Value) -> Result<BatchInfo> {
        dispatch!(self, b => b.commit(summary).await)
    }
    async fn rollback(self) -> Result<()> {
        dispatch!(self, b => b.rollback().await)
    }
}

impl FeedWaiter for AnyWaiter {
    async fn wait(&mut self, timeout: Duration) -> Result<()> {
        dispatch!(self, w => w.wait(timeout).await)
    }
}

impl crate::AccessStore for AnyStore {
    async fn put_agency(&self, agency: &landdb_access::Agency) -> Result<()> {
        dispatch!(self, s => s.put_agency(agency).await)
    }
    async fn agencies(&self) -> Result<Vec<landdb_access::Agency>> {
        dispatch!(self, s => s.agencies().await)
    }
    async fn put_key(&self, key: &landdb_access::KeyRecord) -> Result<()> {
        dispatch!(self, s => s.put_key(key).await)
    }
    async fn end_key(
        &self,
        id: &str,
        revoked_at: Option<DateTime<Utc>>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        dispatch!(self, s => s.end_key(id, revoked_at, expires_at).await)
    }
    async fn keys(&self) -> Result<Vec<landdb_access::KeyRecord>> {
        dispatch!(self, s => s.keys().await)
    }
    async fn access_generation(&self) -> Result<i64> {
        dispatch!(self, s => s.access_generation().await)
    }
    async fn append_audit(&self, events: &[landdb_access::AuditEvent]) -> Result<()> {
        dispatch!(self, s => s.append_audit(events).await)
    }
    async fn audit_entries(&self, query: &crate::AuditQuery) -> Result<Vec<landdb_access::AuditEntry>> {
        dispatch!(self, s => s.audit_entries(query).await)
    }
    async fn verify_audit(
        &self,
        on_entry: &mut (dyn FnMut(&landdb_access::AuditEntry) + Send),
    ) -> Result<Result<landdb_access::Verified, landdb_access::Broken>> {
        dispatch!(self, s => s.verify_audit(on_entry).await)
    }
    async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        dispatch!(self, s => s.audit_head().await)
    }
    async fn parcels_taken(&self, agency: &str, since: DateTime<Utc>) -> Result<u64> {
        dispatch!(self, s => s.parcels_taken(agency, since).await)
    }
    async fn lease_quota(&self, lease: &landdb_access::limits::QuotaLease) -> Result<landdb_access::limits::Leased> {
        dispatch!(self, s => s.lease_quota(lease).await)
    }
    async fn return_quota(&self, agency: &str, day: chrono::NaiveDate, features: u64) -> Result<()> {
        dispatch!(self, s => s.return_quota(agency, day, features).await)
    }
    async fn secret(&self, purpose: &str, fresh: [u8; 32]) -> Result<[u8; 32]> {
        dispatch!(self, s => s.secret(purpose, fresh).await)
    }
    async fn heartbeat(&self, id: &str) -> Result<u64> {
        dispatch!(self, s => s.heartbeat(id).await)
    }
    async fn leave(&self, id: &str) -> Result<()> {
        dispatch!(self, s => s.leave(id).await)
    }
    async fn remember_scope(&self, agency: &str, scope: &FollowedScope) -> Result<()> {
        dispatch!(self, s => s.remember_scope(agency, scope).await)
    }

    async fn remembered_scope(&self, agency: &str, fingerprint: u64) -> Result<Option<FollowedScope>> {
        dispatch!(self, s => s.remembered_scope(agency, fingerprint).await)
    }

    async fn put_subscription(&self, sub: &Subscription) -> Result<()> {
        dispatch!(self, s => s.put_subscription(sub).await)
    }
    async fn update_subscription(&self, sub: &Subscription) -> Result<bool> {
        dispatch!(self, s => s.update_subscription(sub).await)
    }
    async fn subscriptions(&self) -> Result<Vec<Subscription>> {
        dispatch!(self, s => s.subscriptions().await)
    }
    async fn delete_subscription(&self, id: &str) -> Result<bool> {
        dispatch!(self, s => s.delete_subscription(id).await)
    }
    async fn lease_subscription(
        &self,
        id: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        dispatch!(self, s => s.lease_subscription(id, holder, now, until).await)
    }
    async fn add_dead_letter(&self, d: &DeadLetter) -> Result<i64> {
        dispatch!(self, s => s.add_dead_letter(d).await)
    }
    async fn dead_letters(&self, subscription: &str) -> Result<Vec<DeadLetter>> {
        dispatch!(self, s => s.dead_letters(subscription).await)
    }
    async fn mark_replayed(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        dispatch!(self, s => s.mark_replayed(id, at).await)
    }
}
