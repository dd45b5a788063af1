//! PostGIS, the system of record: bulk loads through `COPY`, history kept in `parcel_version`,
//! and the change feed in `parcel_change` with `NOTIFY landdb_changes`.

mod access;
mod copy;
mod replicas;
mod sealing;

use replicas::Replicas;
use sealing::{active_key, register_data_key, rotate, seal_clear_rows};

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use landdb_model::{
    BatchId, CitizenId, CommuneCode, FeedPosition, NationalParcelId, Parcel, ParcelKey, ParcelVersion, RightHolder,
    VersionId,
};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};

use crate::data_keys::{DataKey, Keyring, KeysInUse, Rotation};
use crate::database_url::redact;
use crate::row::VersionRow;
use crate::{
    BatchInfo, BatchWriter, ChangeKind, CurrentEntry, FeedWaiter, NewBatch, ParcelChange, ParcelStore, Period,
    QuarantinedRecord, Result, StoreError, error::key_from_unique_violation,
};

/// The channel `NOTIFY` uses when a batch commits; the payload is the new feed head.
pub const CHANGE_CHANNEL: &str = "landdb_changes";
/// Serialises the change-feed append of committing batches, so feed order is commit order.
const FEED_LOCK: i64 = 0x6c61_6e64_6462; // "landdb"

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "parcels", include_str!("../../../../migrations/postgres/0001_parcels.sql")),
    (2, "quarantine", include_str!("../../../../migrations/postgres/0002_quarantine.sql")),
    (3, "lighter bulk load", include_str!("../../../../migrations/postgres/0003_lighter_bulk_load.sql")),
    (4, "access", include_str!("../../../../migrations/postgres/0004_access.sql")),
    (5, "audit blocks", include_str!("../../../../migrations/postgres/0005_audit_blocks.sql")),
    (6, "every version disclosed", include_str!("../../../../migrations/postgres/0006_every_version_disclosed.sql")),
    (7, "quota days", include_str!("../../../../migrations/postgres/0007_quota_days.sql")),
    (8, "audit index pending list", include_str!("../../../../migrations/postgres/0008_audit_index_pending_list.sql")),
    (9, "audit by commune", include_str!("../../../../migrations/postgres/0009_audit_by_commune.sql")),
    (10, "server secrets", include_str!("../../../../migrations/postgres/0010_server_secrets.sql")),
    (11, "webhooks", include_str!("../../../../migrations/postgres/0011_webhooks.sql")),
    (12, "feed scopes", include_str!("../../../../migrations/postgres/0012_feed_scopes.sql")),
    (13, "sealed holders", include_str!("../../../../migrations/postgres/0013_sealed_holders.sql")),
    (14, "clear holders dropped", include_str!("../../../../migrations/postgres/0014_clear_holders_dropped.sql")),
    (15, "server processes", include_str!("../../../../migrations/postgres/0015_server_processes.sql")),
];

/// The migration that adds the sealed columns; the clear ones go in the next, once landdb has
/// sealed what was written before.
const SEALED_COLUMNS_ADDED: i64 = 13;
/// Held while rows written before migration 13 are sealed, so that one process does it.
const SEAL_LOCK: i64 = 0x6c61_6e64_6462_5345; // "landdbSE"

const VERSION_COLUMNS: &str = "v.id, v.national_id, v.commune_code, v.sheet, v.parcel_no, v.commune_code_received, \
    v.province_code, v.land_use, v.legal_area_m2, v.measured_area_m2, v.geometry_area_m2, v.address, \
    v.certificate_no, v.source_crs, v.extra, ST_AsBinary(v.geom) AS geom, v.valid_from, v.valid_to, v.batch_id, \
    (SELECT coalesce(array_agg(l.parent_id ORDER BY l.parent_id), '{}') FROM parcel_lineage l WHERE l.version_id = v.id) AS lineage";

/// A `right_holder` row (version_id, ordinal, key_id, sealed), opened.
fn holder_from_row(r: &PgRow, keyring: &Keyring) -> Result<RightHolder> {
    let key = keyring.key(r.try_get("key_id")?)?;
    key.open_holder(r.try_get("version_id")?, r.try_get("ordinal")?, r.try_get::<&[u8], _>("sealed")?)
}

fn version_from_row(row: &PgRow) -> Result<ParcelVersion> {
    VersionRow {
        id: row.try_get("id")?,
        national_id: row.try_get("national_id")?,
        commune_code: row.try_get("commune_code")?,
        sheet: row.try_get("sheet")?,
        parcel_no: row.try_get("parcel_no")?,
        commune_code_received: row.try_get("commune_code_received")?,
        province_code: row.try_get("province_code")?,
        land_use: row.try_get("land_use")?,
        legal_area_m2: row.try_get("legal_area_m2")?,
        measured_area_m2: row.try_get("measured_area_m2")?,
        geometry_area_m2: row.try_get("geometry_area_m2")?,
        address: row.try_get("address")?,
        certificate_no: row.try_get("certificate_no")?,
        source_crs: row.try_get("source_crs")?,
        extra: row.try_get("extra")?,
        geom_wkb: row.try_get("geom")?,
        valid_from: row.try_get("valid_from")?,
        valid_to: row.try_get("valid_to")?,
        batch_id: row.try_get("batch_id")?,
        lineage: row.try_get("lineage")?,
    }
    .into_version()
}

fn batch_from_row(row: &PgRow) -> Result<BatchInfo> {
    Ok(BatchInfo {
        id: BatchId(row.try_get("id")?),
        source: row.try_get("source")?,
        province_code: row.try_get("province_code")?,
        content_hash: row.try_get("content_hash")?,
        mode: row.try_get("mode")?,
        started_at: row.try_get("started_at")?,
        committed_at: row.try_get("committed_at")?,
        summary: row.try_get("summary")?,
    })
}

const BATCH_COLUMNS: &str = "id, source, province_code, content_hash, mode, started_at, committed_at, summary";

fn sql_state(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(Cow::into_owned),
        _ => None,
    }
}

/// Turns a connection failure into an error that says what to do, without the password.
fn connect_error(err: sqlx::Error, url: &str, options: &PgConnectOptions) -> StoreError {
    let shown = redact(url);
    match (&err, sql_state(&err).as_deref()) {
        (sqlx::Error::Io(io), _) => StoreError::Unreachable { url: shown, reason: io.to_string() },
        (sqlx::Error::PoolTimedOut, _) => {
            StoreError::Unreachable { url: shown, reason: "no connection within 10 s".into() }
        }
        (_, Some("3D000")) => StoreError::NoSuchDatabase {
            url: shown,
            database: options.get_database().unwrap_or("(default)").to_owned(),
        },
        (_, Some("28P01" | "28000")) => StoreError::LoginRefused { url: shown, reason: err.to_string() },
        _ => StoreError::Database(err),
    }
}

/// The PostGIS store.
#[derive(Debug, Clone)]
pub struct PgStore {
    /// The primary: every write, and the reads that writers and the access rules depend on.
    pool: PgPool,
    /// The read replicas (streaming standbys) given with [`PgStore::with_replicas`]: parcels,
    /// history and the change feed are read from one of them, or from the primary without.
    replicas: Option<Arc<Replicas>>,
    keyring: Arc<Keyring>,
    keys_in_use: Arc<KeysInUse>,
    /// The audit writer's lines, kept from one block to the next: a block's hundreds of
    /// kilobytes allocated afresh each time came back from the kernel as new pages to zero.
    audit_lines: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl PgStore {
    /// Connects, checks PostGIS, and brings the schema up to date (idempotent; concurrent starts
    /// are serialised by the migrator's advisory lock).
    pub async fn connect(url: &str) -> Result<Self> {
        PgStore::connect_with(url, Keyring::located()?).await
    }

    /// As [`PgStore::connect`], right holders sealed under `keyring`'s keys.
    pub async fn connect_with(url: &str, keyring: Arc<Keyring>) -> Result<Self> {
        let (pool, options) = pool_of(url).await?;
        // A standby is read-only: no schema change, no audit entry, no quota could be written.
        let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(&pool).await?;
        if standby {
            return Err(StoreError::Standby { url: redact(url) });
        }
        ensure_postgis(&pool, url, &options).await?;
        let migration = |e: sqlx::migrate::MigrateError| StoreError::Migration(e.to_string());
        crate::migrations::migrator_upto(MIGRATIONS, SEALED_COLUMNS_ADDED).run(&pool).await.map_err(migration)?;
        register_data_key(&pool, &keyring).await?;
        seal_clear_rows(&pool, &keyring).await?;
        crate::migrations::migrator(MIGRATIONS).run(&pool).await.map_err(migration)?;
        Ok(Self { replicas: None, pool, keyring, keys_in_use: Arc::default(), audit_lines: Arc::default() })
    }

    /// Reads parcels, history and the change feed from `urls`, read replicas of this primary
    /// (streaming standbys, `pg_basebackup -R`), the first while it answers (see [`Replicas`]);
    /// writes stay on the primary. Each must be a copy of this primary's cluster and database,
    /// and have replayed its schema (waited for up to 30 s, as after a migration the primary
    /// just ran). Nothing is written to them.
    pub async fn with_replicas(mut self, urls: &[&str]) -> Result<Self> {
        let schema = MIGRATIONS.last().map_or(0, |m| m.0);
        self.replicas = Some(Arc::new(Replicas::connect(&self.pool, urls, schema).await?));
        Ok(self)
    }

    /// Whether reads go to replicas.
    pub fn has_replica(&self) -> bool {
        self.replicas.is_some()
    }

    /// Where parcels, history and the change feed are read now.
    fn read(&self) -> &PgPool {
        self.replicas.as_ref().map_or(&self.pool, |r| r.pool(&self.pool))
    }

    /// Notes a change-feed position read through [`PgStore::read`].
    fn saw(&self, position: i64) {
        if let Some(r) = &self.replicas {
            r.saw(position);
        }
    }

    /// Moves reads off a replica that does not answer (see [`Replicas`]); what reads go to
    /// now (`None` without replicas).
    pub async fn choose_replica(&self) -> Option<String> {
        let replicas = self.replicas.as_ref()?;
        replicas.choose().await;
        Some(replicas.reading_from())
    }

    /// How far the database read from is behind the primary's change feed (0 without replicas).
    pub async fn replica_lag(&self) -> Result<i64> {
        let primary: i64 = sqlx::query_scalar(replicas::HEAD).fetch_one(&self.pool).await?;
        let replica: i64 = sqlx::query_scalar(replicas::HEAD).fetch_one(self.read()).await?;
        Ok(primary - replica)
    }

    /// The keyring right holders are sealed under.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// The connection pool, for the few callers (benchmarks, the API's SQL queries) that need SQL.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `read` where reads go now. When that database does not answer and there are
    /// replicas, reads are moved at once (see [`Replicas::choose`]) and `read` runs again where
    /// they go: a standby's failure costs a request the moment it takes to notice, not an error.
    async fn reading<T, F>(&self, read: impl Fn(PgPool) -> F) -> Result<T>
    where
        F: Future<Output = std::result::Result<T, sqlx::Error>>,
    {
        match read(self.read().clone()).await {
            Err(e) if crate::error::unavailable(&e) => match &self.replicas {
                Some(replicas) => {
                    replicas.choose().await;
                    Ok(read(self.read().clone()).await?)
                }
                None => Err(e.into()),
            },
            other => Ok(other?),
        }
    }

    /// The versions the query built by `query` selects (built again if it must run twice).
    async fn fetch_versions<'q>(&self, query: impl Fn() -> SqlQuery<'q>) -> Result<Vec<ParcelVersion>> {
        let rows = self
            .reading(|pool| {
                let query = query();
                async move { query.fetch_all(&pool).await }
            })
            .await?;
        rows.iter().map(version_from_row).collect()
    }
}

type SqlQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// A pool of connections to `url`, and its options.
async fn pool_of(url: &str) -> Result<(PgPool, PgConnectOptions)> {
    let options = PgConnectOptions::from_str(url).map_err(|_| StoreError::UnsupportedUrl(redact(url)))?;
    // One direct attempt first: the pool would retry a refused connection until its timeout, and
    // an operator whose server is down should hear so at once.
    sqlx::ConnectOptions::connect(&options).await.map_err(|e| connect_error(e, url, &options))?;
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .map_err(|e| connect_error(e, url, &options))?;
    Ok((pool, options))
}

async fn ensure_postgis(pool: &PgPool, url: &str, options: &PgConnectOptions) -> Result<()> {
    let enabled: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgis')")
        .fetch_one(pool)
        .await?;
    if enabled {
        return Ok(());
    }
    let available: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'postgis')")
            .fetch_one(pool)
            .await?;
    if !available {
        return Err(StoreError::PostgisMissing { url: redact(url) });
    }
    match sqlx::query("CREATE EXTENSION IF NOT EXISTS postgis").execute(pool).await {
        Ok(_) => Ok(()),
        Err(e) if sql_state(&e).as_deref() == Some("42501") => {
            Err(StoreError::PostgisNotEnabled { database: options.get_database().unwrap_or("(default)").to_owned() })
        }
        Err(e) => Err(e.into()),
    }
}

impl ParcelStore for PgStore {
    type Batch = PgBatch;
    type Waiter = PgWaiter;

    async fn begin_batch(&self, batch: NewBatch) -> Result<PgBatch> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO import_batch (source, province_code, content_hash, mode) VALUES ($1, $2, $3, $4) \
             RETURNING id, started_at",
        )
        .bind(&batch.source)
        .bind(&batch.province_code)
        .bind(&batch.content_hash)
        .bind(&batch.mode)
        .fetch_one(&mut *tx)
        .await?;
        // Held until the batch ends: a rotation waits for batches sealing under the old key.
        let key = active_key(&mut tx, &self.keyring, "FOR SHARE").await?;
        Ok(PgBatch {
            tx,
            id: BatchId(row.try_get("id")?),
            started_at: row.try_get("started_at")?,
            failed: None,
            key,
            keyring: Arc::clone(&self.keyring),
            copy_buffers: (Vec::new(), Vec::new()),
        })
    }

    async fn version(&self, id: VersionId) -> Result<Option<ParcelVersion>> {
        let sql = format!("SELECT {VERSION_COLUMNS} FROM parcel_version v WHERE v.id = $1");
        Ok(self.fetch_versions(|| sqlx::query(&sql).bind(id.0)).await?.pop())
    }

    async fn at_point_on(&self, lon: f64, lat: f64, when: DateTime<Utc>) -> Result<Vec<ParcelVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM parcel_version v \
             WHERE ST_Intersects(v.geom, ST_SetSRID(ST_MakePoint($1, $2), 4326)) \
             AND v.valid_from <= $3 AND (v.valid_to IS NULL OR v.valid_to > $3) ORDER BY v.id"
        );
        self.fetch_versions(|| sqlx::query(&sql).bind(lon).bind(lat).bind(when)).await
    }

    async fn valid_during(
        &self,
        period: Period,
        bbox: Option<geo::Rect<f64>>,
        after: Option<VersionId>,
        limit: usize,
    ) -> Result<Vec<ParcelVersion>> {
        // A version is valid from valid_from up to, not including, valid_to.
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM parcel_version v \
             WHERE v.id > $1 AND ($2::timestamptz IS NULL OR v.valid_to IS NULL OR v.valid_to > $2) \
             AND ($3::timestamptz IS NULL OR v.valid_from <= $3) \
             AND ($4::float8 IS NULL OR ST_Intersects(v.geom, ST_MakeEnvelope($4, $5, $6, $7, 4326))) \
             ORDER BY v.id LIMIT $8"
        );
        let corner = |f: fn(&geo::Rect<f64>) -> f64| bbox.as_ref().map(f);
        self.fetch_versions(|| {
            sqlx::query(&sql)
                .bind(after.map_or(0, |v| v.0))
                .bind(period.start)
                .bind(period.end)
                .bind(corner(|r| r.min().x))
                .bind(corner(|r| r.min().y))
                .bind(corner(|r| r.max().x))
                .bind(corner(|r| r.max().y))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        })
        .await
    }

    async fn analyze(&self) -> Result<()> {
        // The table sizes are what misled the planner; they come with any column. The geometry's
        // statistics (half a second for Đà Nẵng) are left to autovacuum.
        sqlx::query("ANALYZE parcel_version (id, valid_to, commune_code, batch_id), parcel_change (seq)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn versions(&self, ids: &[VersionId]) -> Result<Vec<ParcelVersion>> {
        let raw: Vec<i64> = ids.iter().map(|v| v.0).collect();
        let sql = format!("SELECT {VERSION_COLUMNS} FROM parcel_version v WHERE v.id = ANY($1) ORDER BY v.id");
        self.fetch_versions(|| sqlx::query(&sql).bind(raw.clone())).await
    }

    async fn current_by_key(&self, key: &ParcelKey) -> Result<Option<ParcelVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM parcel_version v \
             WHERE v.commune_code = $1 AND v.sheet = $2 AND v.parcel_no = $3 AND v.valid_to IS NULL"
        );
        Ok(self
            .fetch_versions(|| {
                sqlx::query(&sql).bind(key.commune.as_str().to_owned()).bind(key.sheet.clone()).bind(key.number.clone())
            })
            .await?
            .pop())
    }

    async fn current_by_national_id(&self, id: &NationalParcelId) -> Result<Vec<ParcelVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM parcel_version v WHERE v.national_id = $1 AND v.valid_to IS NULL ORDER BY v.id"
        );
        self.fetch_versions(|| sqlx::query(&sql).bind(id.as_str().to_owned())).await
    }

    async fn history(&self, key: &ParcelKey) -> Result<Vec<ParcelVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM parcel_version v \
             WHERE v.commune_code = $1 AND v.sheet = $2 AND v.parcel_no = $3 ORDER BY v.valid_from, v.id"
        );
        self.fetch_versions(|| {
            sqlx::query(&sql).bind(key.commune.as_str().to_owned()).bind(key.sheet.clone()).bind(key.number.clone())
        })
        .await
    }

    async fn successors(&self, id: VersionId) -> Result<Vec<VersionId>> {
        let ids: Vec<i64> = self
            .reading(|pool| {
                let query = sqlx::query_scalar(
                    "SELECT version_id FROM parcel_lineage WHERE parent_id = $1 ORDER BY version_id",
                )
                .bind(id.0);
                async move { query.fetch_all(&pool).await }
            })
            .await?;
        Ok(ids.into_iter().map(VersionId).collect())
    }

    async fn children_of(&self, parents: &[VersionId]) -> Result<Vec<(VersionId, VersionId)>> {
        let raw: Vec<i64> = parents.iter().map(|v| v.0).collect();
        let rows: Vec<(i64, i64)> = self
            .reading(|pool| {
                let query = sqlx::query_as(
                    "SELECT parent_id, version_id FROM parcel_lineage WHERE parent_id = ANY($1) ORDER BY parent_id, version_id",
                )
                .bind(raw.clone());
                async move { query.fetch_all(&pool).await }
            })
            .await?;
        Ok(rows.into_iter().map(|(p, c)| (VersionId(p), VersionId(c))).collect())
    }

    async fn right_holders(&self, id: VersionId) -> Result<Vec<RightHolder>> {
        let rows = self
            .reading(|pool| {
                let query = sqlx::query(
                    "SELECT version_id, ordinal, key_id, sealed FROM right_holder WHERE version_id = $1 ORDER BY ordinal",
                )
                .bind(id.0);
                async move { query.fetch_all(&pool).await }
            })
            .await?;
        rows.iter().map(|r| holder_from_row(r, &self.keyring)).collect()
    }

    async fn versions_held_by(&self, citizen: &CitizenId) -> Result<Vec<VersionId>> {
        let mut in_use = self.keys_in_use.last_seen();
        loop {
            let indexes = crate::data_keys::citizen_indexes(&self.keyring, &in_use, citizen.as_str())?;
            // One statement, one snapshot: the keys in use and the rows under them.
            let (keys, ids): (Vec<i64>, Vec<i64>) = self
                .reading(|pool| {
                    let query = sqlx::query_as(
                        "SELECT ARRAY(SELECT id FROM data_key WHERE state <> 'retired' ORDER BY id), \
                         ARRAY(SELECT DISTINCT version_id FROM right_holder WHERE citizen_index = ANY($1) ORDER BY version_id)",
                    )
                    .bind(indexes.clone());
                    async move { query.fetch_one(&pool).await }
                })
                .await?;
            match self.keys_in_use.confirm(&in_use, keys) {
                Ok(()) => return Ok(ids.into_iter().map(VersionId).collect()),
                Err(now) => in_use = now,
            }
        }
    }

    async fn rotate_data_key(&self) -> Result<Rotation> {
        rotate(&self.pool, &self.keyring).await
    }

    async fn current_page(&self, after: Option<VersionId>, limit: usize) -> Result<Vec<ParcelVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM parcel_version v WHERE v.valid_to IS NULL AND v.id > $1 ORDER BY v.id LIMIT $2"
        );
        let after = after.map_or(0, |v| v.0);
        self.fetch_versions(|| sqlx::query(&sql).bind(after).bind(i64::try_from(limit).unwrap_or(i64::MAX))).await
    }

    async fn count_current(&self) -> Result<u64> {
        let n: i64 = self
            .reading(|pool| {
                let query = sqlx::query_scalar("SELECT count(*) FROM parcel_version WHERE valid_to IS NULL");
                async move { query.fetch_one(&pool).await }
            })
            .await?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn current_in_communes(&self, communes: &[CommuneCode]) -> Result<Vec<CurrentEntry>> {
        let codes: Vec<String> = communes.iter().map(ToString::to_string).collect();
        let rows = sqlx::query(
            "SELECT id, commune_code, sheet, parcel_no, fingerprint FROM parcel_version \
             WHERE valid_to IS NULL AND commune_code = ANY($1) ORDER BY id",
        )
        .bind(&codes)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                crate::current_entry(
                    r.try_get("id")?,
                    r.try_get("commune_code")?,
                    r.try_get("sheet")?,
                    r.try_get("parcel_no")?,
                    r.try_get("fingerprint")?,
                )
            })
            .collect()
    }

    async fn quarantined(&self, batch: BatchId) -> Result<Vec<QuarantinedRecord>> {
        let rows = sqlx::query(
            "SELECT id, file, layer, feature, parcel_key, reasons, key_id, sealed_source FROM quarantine WHERE batch_id = $1 ORDER BY id",
        )
        .bind(batch.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(QuarantinedRecord {
                    file: r.try_get("file")?,
                    layer: r.try_get("layer")?,
                    feature: r.try_get("feature")?,
                    parcel_key: r.try_get("parcel_key")?,
                    reasons: r.try_get("reasons")?,
                    source: self
                        .keyring
                        .key(r.try_get("key_id")?)?
                        .open_source(r.try_get("id")?, r.try_get::<&[u8], _>("sealed_source")?)?,
                })
            })
            .collect()
    }

    async fn batch(&self, id: BatchId) -> Result<Option<BatchInfo>> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM import_batch WHERE id = $1");
        sqlx::query(&sql).bind(id.0).fetch_optional(&self.pool).await?.as_ref().map(batch_from_row).transpose()
    }

    async fn batch_by_content_hash(&self, hash: &str) -> Result<Option<BatchInfo>> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM import_batch WHERE content_hash = $1");
        sqlx::query(&sql).bind(hash).fetch_optional(&self.pool).await?.as_ref().map(batch_from_row).transpose()
    }

    async fn latest_batch_of(&self, source: &str) -> Result<Option<BatchInfo>> {
        let sql = format!(
            "SELECT {BATCH_COLUMNS} FROM import_batch WHERE source = $1 AND committed_at IS NOT NULL ORDER BY id DESC LIMIT 1"
        );
        sqlx::query(&sql).bind(source).fetch_optional(&self.pool).await?.as_ref().map(batch_from_row).transpose()
    }

    async fn changes_since(&self, after: FeedPosition, limit: usize) -> Result<Vec<ParcelChange>> {
        let rows = self
            .reading(|pool| {
                let query = sqlx::query(
                    "SELECT seq, batch_id, kind, version_id, national_id, commune_code FROM parcel_change \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(after.0)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX));
                async move { query.fetch_all(&pool).await }
            })
            .await?;
        // What was read, not what was asked for (`after` may come from a client).
        if let Some(last) = rows.last() {
            self.saw(last.try_get("seq")?);
        }
        rows.iter()
            .map(|r| {
                Ok(ParcelChange {
                    position: FeedPosition(r.try_get("seq")?),
                    batch: BatchId(r.try_get("batch_id")?),
                    kind: ChangeKind::parse(r.try_get("kind")?)?,
                    version: VersionId(r.try_get("version_id")?),
                    national_id: NationalParcelId::parse(r.try_get("national_id")?)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    commune: r.try_get("commune_code")?,
                })
            })
            .collect()
    }

    async fn feed_head(&self) -> Result<FeedPosition> {
        let seq: i64 =
            self.reading(|pool| async move { sqlx::query_scalar(replicas::HEAD).fetch_one(&pool).await }).await?;
        self.saw(seq);
        Ok(FeedPosition(seq))
    }

    async fn feed_waiter(&self) -> Result<PgWaiter> {
        // NOTIFY reaches no standby: the primary is listened to, and the replica waited for.
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANGE_CHANNEL).await?;
        Ok(PgWaiter { listener, replicas: self.replicas.clone(), primary: self.pool.clone() })
    }
}

/// Waits on `LISTEN landdb_changes` (on the primary), and then, when the feed is read from a
/// replica, until the replica has replayed the position the notification announced: a follower
/// woken by it then finds the changes there.
#[derive(Debug)]
pub struct PgWaiter {
    listener: PgListener,
    replicas: Option<Arc<Replicas>>,
    primary: PgPool,
}

impl FeedWaiter for PgWaiter {
    async fn wait(&mut self, timeout: Duration) -> Result<()> {
        let started = std::time::Instant::now();
        let head = match tokio::time::timeout(timeout, self.listener.recv()).await {
            Ok(Ok(note)) => note.payload().parse::<i64>().ok(),
            Err(_) => None,
            Ok(Err(e)) => return Err(e.into()),
        };
        if let (Some(head), Some(replicas)) = (head, &self.replicas) {
            while started.elapsed() < timeout {
                let replayed: i64 = sqlx::query_scalar(replicas::HEAD).fetch_one(replicas.pool(&self.primary)).await?;
                if replayed >= head {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(())
    }
}

/// One import batch: a transaction on one pooled connection.
#[derive(Debug)]
pub struct PgBatch {
    tx: Transaction<'static, Postgres>,
    id: BatchId,
    started_at: DateTime<Utc>,
    /// Set once a statement failed: PostgreSQL has aborted the transaction.
    failed: Option<String>,
    /// The database's active data key when the batch began: what its right holders are sealed under.
    key: DataKey,
    keyring: Arc<Keyring>,
    /// The COPY streams of the last insert, kept for the next: a batch's inserts reuse their
    /// memory rather than asking the system for fresh pages each time.
    copy_buffers: (Vec<u8>, Vec<u8>),
}

impl PgBatch {
    fn check_usable(&self) -> Result<()> {
        match &self.failed {
            Some(reason) => Err(StoreError::BatchFailed(reason.clone())),
            None => Ok(()),
        }
    }

    /// Records a failure (the transaction is now aborted) and words a key conflict for the operator.
    fn fail(&mut self, err: sqlx::Error) -> StoreError {
        let err = match sql_state(&err).as_deref() {
            Some("23505") => {
                let detail = match &err {
                    sqlx::Error::Database(db) => db
                        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                        .and_then(|pg| pg.detail().map(str::to_owned))
                        .unwrap_or_else(|| db.message().to_owned()),
                    other => other.to_string(),
                };
                StoreError::CurrentParcelExists { key: key_from_unique_violation(&detail) }
            }
            _ => StoreError::Database(err),
        };
        self.failed = Some(err.to_string());
        err
    }

    /// Checks that every version in `ids` is current or was retired by this batch; returns the
    /// ones still current.
    async fn retirable(&mut self, ids: &[VersionId]) -> Result<Vec<i64>> {
        let raw: Vec<i64> = ids.iter().map(|v| v.0).collect();
        let rows = sqlx::query(
            "SELECT id, valid_to IS NULL AS current, retired_by_batch FROM parcel_version WHERE id = ANY($1)",
        )
        .bind(raw.clone())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(|e| self.fail(e))?;
        let mut current = Vec::new();
        for id in &raw {
            let row = rows.iter().find(|r| r.try_get::<i64, _>("id").ok() == Some(*id));
            let ok = match row {
                Some(r) if r.try_get::<bool, _>("current")? => {
                    current.push(*id);
                    true
                }
                Some(r) => r.try_get::<Option<i64>, _>("retired_by_batch")? == Some(self.id.0),
                None => false,
            };
            if !ok {
                return Err(StoreError::NotCurrent(VersionId(*id)));
            }
        }
        current.sort_unstable();
        current.dedup();
        Ok(current)
    }

    async fn retire_current(&mut self, ids: &[i64]) -> Result<()> {
        sqlx::query(
            "UPDATE parcel_version SET valid_to = $1, retired_by_batch = $2 WHERE id = ANY($3) AND valid_to IS NULL",
        )
        .bind(self.started_at)
        .bind(self.id.0)
        .bind(ids)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| self.fail(e))?;
        Ok(())
    }
}

impl BatchWriter for PgBatch {
    fn id(&self) -> BatchId {
        self.id
    }

    fn effective_at(&self) -> DateTime<Utc> {
        self.started_at
    }

    async fn insert(&mut self, parcels: &[Parcel]) -> Result<Vec<VersionId>> {
        self.check_usable()?;
        if parcels.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT nextval(pg_get_serial_sequence('parcel_version', 'id')) FROM generate_series(1, $1)",
        )
        .bind(i64::try_from(parcels.len()).unwrap_or(i64::MAX))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(|e| self.fail(e))?;
        let (versions, holders) = &mut self.copy_buffers;
        copy::encode(parcels, &ids, self.started_at, self.id, &self.key, versions, holders);
        let tx = &mut self.tx;
        let result = async {
            let mut sink = tx.copy_in_raw(copy::PARCEL_VERSION).await?;
            sink.send(versions.as_slice()).await?;
            sink.finish().await?;
            if !holders.is_empty() {
                let mut sink = tx.copy_in_raw(copy::RIGHT_HOLDER).await?;
                sink.send(holders.as_slice()).await?;
                sink.finish().await?;
            }
            Ok::<_, sqlx::Error>(())
        }
        .await;
        result.map_err(|e| self.fail(e))?;
        Ok(ids.into_iter().map(VersionId).collect())
    }

    async fn supersede(&mut self, parcel: &Parcel, replaces: &[VersionId]) -> Result<VersionId> {
        self.check_usable()?;
        let current = self.retirable(replaces).await?;
        self.retire_current(&current).await?;
        let id = self
            .insert(std::slice::from_ref(parcel))
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("insert of one parcel returned no version".into()))?;
        let parents: Vec<i64> = replaces.iter().map(|v| v.0).collect();
        sqlx::query("INSERT INTO parcel_lineage (version_id, parent_id) SELECT $1, p FROM unnest($2::bigint[]) AS p ON CONFLICT DO NOTHING")
            .bind(id.0)
            .bind(&parents)
            .execute(&mut *self.tx)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(id)
    }

    async fn retire(&mut self, versions: &[VersionId]) -> Result<()> {
        self.check_usable()?;
        let current = self.retirable(versions).await?;
        self.retire_current(&current).await
    }

    async fn withdraw(&mut self, versions: &[VersionId]) -> Result<Vec<Parcel>> {
        self.check_usable()?;
        if versions.is_empty() {
            return Ok(Vec::new());
        }
        let raw: Vec<i64> = versions.iter().map(|v| v.0).collect();
        let sql = format!("SELECT {VERSION_COLUMNS} FROM parcel_version v WHERE v.id = ANY($1) AND v.batch_id = $2");
        let rows = sqlx::query(&sql)
            .bind(raw.clone())
            .bind(self.id.0)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(|e| self.fail(e))?;
        let mut found: Vec<ParcelVersion> = rows.iter().map(version_from_row).collect::<Result<_>>()?;
        if let Some(missing) = versions.iter().find(|v| !found.iter().any(|f| f.id == **v)) {
            return Err(StoreError::NotInBatch(*missing));
        }
        let holders = sqlx::query(
            "SELECT version_id, ordinal, key_id, sealed FROM right_holder WHERE version_id = ANY($1) ORDER BY version_id, ordinal",
        )
        .bind(raw.clone())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(|e| self.fail(e))?;
        for h in &holders {
            let id = VersionId(h.try_get("version_id")?);
            if let Some(v) = found.iter_mut().find(|f| f.id == id) {
                v.parcel.right_holders.push(holder_from_row(h, &self.keyring)?);
            }
        }
        let parents: Vec<i64> = found.iter().flat_map(|v| v.lineage.iter().map(|p| p.0)).collect();
        // The versions go before their parents come back: one key has one current version.
        let statements = [
            "DELETE FROM right_holder WHERE version_id = ANY($1)",
            "DELETE FROM parcel_lineage WHERE version_id = ANY($1)",
            "DELETE FROM parcel_version WHERE id = ANY($1)",
        ];
        for sql in statements {
            sqlx::query(sql).bind(raw.clone()).execute(&mut *self.tx).await.map_err(|e| self.fail(e))?;
        }
        sqlx::query(
            "UPDATE parcel_version SET valid_to = NULL, retired_by_batch = NULL WHERE id = ANY($1) AND retired_by_batch = $2 \
             AND NOT EXISTS (SELECT 1 FROM parcel_lineage l WHERE l.parent_id = parcel_version.id)",
        )
        .bind(&parents)
        .bind(self.id.0)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| self.fail(e))?;
        found.sort_by_key(|v| versions.iter().position(|w| *w == v.id));
        Ok(found.into_iter().map(|v| v.parcel).collect())
    }

    async fn quarantine(&mut self, records: &[QuarantinedRecord]) -> Result<()> {
        self.check_usable()?;
        for r in records {
            // The row's id first: the sealed source is bound to it.
            let id: i64 = sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('quarantine', 'id'))")
                .fetch_one(&mut *self.tx)
                .await
                .map_err(|e| self.fail(e))?;
            sqlx::query(
                "INSERT INTO quarantine (id, batch_id, file, layer, feature, parcel_key, reasons, key_id, sealed_source) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(id)
            .bind(self.id.0)
            .bind(&r.file)
            .bind(&r.layer)
            .bind(r.feature)
            .bind(&r.parcel_key)
            .bind(&r.reasons)
            .bind(self.key.id())
            .bind(self.key.seal_source(id, &r.source))
            .execute(&mut *self.tx)
            .await
            .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    async fn commit(mut self, summary: serde_json::Value) -> Result<BatchInfo> {
        self.check_usable()?;
        let id = self.id.0;
        let statements = [
            "SELECT pg_advisory_xact_lock($2)",
            "INSERT INTO parcel_change (batch_id, kind, version_id, national_id, commune_code) \
             SELECT $1, 'retired', id, national_id, commune_code FROM parcel_version WHERE retired_by_batch = $1 ORDER BY id",
            "INSERT INTO parcel_change (batch_id, kind, version_id, national_id, commune_code) \
             SELECT $1, 'created', id, national_id, commune_code FROM parcel_version WHERE batch_id = $1 ORDER BY id",
        ];
        for sql in statements {
            let query = sqlx::query(sql).bind(id);
            let query = if sql.contains("$2") { query.bind(FEED_LOCK) } else { query };
            query.execute(&mut *self.tx).await?;
        }
        let sql = format!(
            "UPDATE import_batch SET committed_at = clock_timestamp(), summary = $2, \
             province_code = coalesce(province_code, $2->>'province') WHERE id = $1 RETURNING {BATCH_COLUMNS}"
        );
        let row = sqlx::query(&sql).bind(id).bind(&summary).fetch_one(&mut *self.tx).await?;
        let info = batch_from_row(&row)?;
        sqlx::query("SELECT pg_notify($1, (SELECT coalesce(max(seq), 0) FROM parcel_change)::text)")
            .bind(CHANGE_CHANNEL)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(info)
    }

    async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}
