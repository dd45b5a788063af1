//! The embedded store: one SQLite file, the default when no PostGIS is given, so landdb runs on a
//! laptop with no server. Same behaviour as the PostGIS store; writers are serialised (SQLite has
//! one writer at a time), and feed followers poll instead of listening.

mod access;
mod sealing;

use sealing::{active_key, register_data_key, rotate, seal_clear_rows};

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use landdb_model::{
    BatchId, CitizenId, CommuneCode, FeedPosition, NationalParcelId, Parcel, ParcelKey, ParcelVersion, RightHolder,
    VersionId,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::data_keys::{DataKey, Keyring, KeysInUse, Rotation};
use crate::row::VersionRow;
use crate::{
    BatchInfo, BatchWriter, ChangeKind, CurrentEntry, FeedWaiter, NewBatch, ParcelChange, ParcelStore, Period,
    QuarantinedRecord, Result, StoreError, geometry,
};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "parcels", include_str!("../../../../migrations/sqlite/0001_parcels.sql")),
    (2, "quarantine", include_str!("../../../../migrations/sqlite/0002_quarantine.sql")),
    (3, "access", include_str!("../../../../migrations/sqlite/0003_access.sql")),
    (4, "every version disclosed", include_str!("../../../../migrations/sqlite/0004_every_version_disclosed.sql")),
    (5, "quota days", include_str!("../../../../migrations/sqlite/0005_quota_days.sql")),
    (6, "audit communes", include_str!("../../../../migrations/sqlite/0006_audit_communes.sql")),
    (7, "server secrets", include_str!("../../../../migrations/sqlite/0007_server_secrets.sql")),
    (8, "webhooks", include_str!("../../../../migrations/sqlite/0008_webhooks.sql")),
    (9, "feed scopes", include_str!("../../../../migrations/sqlite/0009_feed_scopes.sql")),
    (10, "sealed holders", include_str!("../../../../migrations/sqlite/0010_sealed_holders.sql")),
    (11, "clear holders dropped", include_str!("../../../../migrations/sqlite/0011_clear_holders_dropped.sql")),
    (12, "server processes", include_str!("../../../../migrations/sqlite/0012_server_processes.sql")),
];

/// The migration that adds the sealed columns; the clear ones go in the next, once landdb has
/// sealed what was written before.
const SEALED_COLUMNS_ADDED: i64 = 10;

/// How often a follower of the embedded store looks for new changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Timestamps as fixed-width RFC 3339 text, so that text order is time order.
fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_timestamp(raw: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {raw:?}: {e}")))
}

fn json(raw: &str) -> Result<serde_json::Value> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("JSON column: {e}")))
}

const VERSION_COLUMNS: &str = "v.id, v.national_id, v.commune_code, v.sheet, v.parcel_no, v.commune_code_received, \
    v.province_code, v.land_use, v.legal_area_m2, v.measured_area_m2, v.geometry_area_m2, v.address, \
    v.certificate_no, v.source_crs, v.extra, v.geom, v.valid_from, v.valid_to, v.batch_id, \
    (SELECT json_group_array(parent_id) FROM (SELECT parent_id FROM parcel_lineage l WHERE l.version_id = v.id ORDER BY parent_id)) AS lineage";

/// A `right_holder` row (version_id, ordinal, key_id, sealed), opened.
fn holder_from_row(r: &SqliteRow, keyring: &Keyring) -> Result<RightHolder> {
    let key = keyring.key(r.try_get("key_id")?)?;
    key.open_holder(r.try_get("version_id")?, r.try_get("ordinal")?, r.try_get::<&[u8], _>("sealed")?)
}

fn version_from_row(row: &SqliteRow) -> Result<ParcelVersion> {
    let land_use: Vec<String> = serde_json::from_value(json(row.try_get("land_use")?)?)
        .map_err(|e| StoreError::Corrupt(format!("land_use: {e}")))?;
    let lineage: Vec<i64> = serde_json::from_value(json(row.try_get("lineage")?)?)
        .map_err(|e| StoreError::Corrupt(format!("lineage: {e}")))?;
    VersionRow {
        id: row.try_get("id")?,
        national_id: row.try_get("national_id")?,
        commune_code: row.try_get("commune_code")?,
        sheet: row.try_get("sheet")?,
        parcel_no: row.try_get("parcel_no")?,
        commune_code_received: row.try_get("commune_code_received")?,
        province_code: row.try_get("province_code")?,
        land_use,
        legal_area_m2: row.try_get("legal_area_m2")?,
        measured_area_m2: row.try_get("measured_area_m2")?,
        geometry_area_m2: row.try_get("geometry_area_m2")?,
        address: row.try_get("address")?,
        certificate_no: row.try_get("certificate_no")?,
        source_crs: row.try_get("source_crs")?,
        extra: json(row.try_get("extra")?)?,
        geom_wkb: row.try_get("geom")?,
        valid_from: parse_timestamp(row.try_get("valid_from")?)?,
        valid_to: row.try_get::<Option<&str>, _>("valid_to")?.map(parse_timestamp).transpose()?,
        batch_id: row.try_get("batch_id")?,
        lineage,
    }
    .into_version()
}

const BATCH_COLUMNS: &str = "id, source, province_code, content_hash, mode, started_at, committed_at, summary";

fn batch_from_row(row: &SqliteRow) -> Result<BatchInfo> {
    Ok(BatchInfo {
        id: BatchId(row.try_get("id")?),
        source: row.try_get("source")?,
        province_code: row.try_get("province_code")?,
        content_hash: row.try_get("content_hash")?,
        mode: row.try_get("mode")?,
        started_at: parse_timestamp(row.try_get("started_at")?)?,
        committed_at: row.try_get::<Option<&str>, _>("committed_at")?.map(parse_timestamp).transpose()?,
        summary: json(row.try_get("summary")?)?,
    })
}

/// A transaction that writes: it takes the file's write lock at `BEGIN` (waiting for it as long
/// as `busy_timeout` says), so that another process writing at the same time (an import worker, the
/// server's audit writer) makes it wait rather than fail. A deferred transaction that reads first
/// and then writes gets "database is locked" at once instead: SQLite will not wait to upgrade a
/// read snapshot another process has moved past.
pub(crate) async fn begin_writing(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

/// The embedded store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One writing batch at a time in this process (SQLite has a single writer; waiting here is
    /// kinder than failing with "database is locked").
    writer: Arc<Mutex<()>>,
    keyring: Arc<Keyring>,
    keys_in_use: Arc<KeysInUse>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store file and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        SqliteStore::open_with(path, Keyring::located()?).await
    }

    /// As [`SqliteStore::open`], right holders sealed under `keyring`'s keys.
    pub async fn open_with(path: &Path, keyring: Arc<Keyring>) -> Result<Self> {
        let embedded = |reason: String| StoreError::Embedded { path: path.display().to_string(), reason };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| embedded(e.to_string()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| embedded(e.to_string()))?;
        let migration = |e: sqlx::migrate::MigrateError| StoreError::Migration(e.to_string());
        crate::migrations::migrator_upto(MIGRATIONS, SEALED_COLUMNS_ADDED).run(&pool).await.map_err(migration)?;
        register_data_key(&pool, &keyring).await?;
        seal_clear_rows(&pool, &keyring, MIGRATIONS.last().map_or(0, |m| m.0)).await?;
        crate::migrations::migrator(MIGRATIONS).run(&pool).await.map_err(migration)?;
        Ok(Self { pool, writer: Arc::new(Mutex::new(())), keyring, keys_in_use: Arc::default() })
    }

    /// The keyring right holders are sealed under.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn fetch_versions(&self, query: SqlQuery<'_>) -> Result<Vec<ParcelVersion>> {
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(version_from_row).collect()
    }
}

type SqlQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

impl ParcelStore for SqliteStore {
    type Batch = SqliteBatch;
    type Waiter = PollingWaiter;

    async fn begin_batch(&self, batch: NewBatch) -> Result<SqliteBatch> {
        let guard = Arc::clone(&self.writer).lock_owned().await;
        let mut tx = begin_writing(&self.pool).await?;
        // Microseconds, as PostgreSQL keeps them, so both stores report the same times.
        let started_at = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_else(Utc::now);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO import_batch (source, province_code, content_hash, mode, started_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&batch.source)
        .bind(&batch.province_code)
        .bind(&batch.content_hash)
        .bind(&batch.mode)
        .bind(timestamp(started_at))
        .fetch_one(&mut *tx)
        .await?;
        let key = active_key(&mut tx, &self.keyring).await?;
        Ok(SqliteBatch {
            tx,
            _writer: guard,
            id: BatchId(id),
            started_at,
            failed: None,
            key,
            keyring: Arc::clone(&self.keyring),
        })
    }

    async fn version(&self, id: VersionId) -> Result<Option<ParcelVersion>> {
        let sql = format!("SELECT {VERSION_COLUMNS} FROM parcel_version v WHERE v.id = ?");
        Ok(self.fetch_versions(sqlx::query(&sql).bind(id.0)).await?.pop())
    }

    async fn at_point_on(&self, lon: f64, lat: f64, when: DateTime<Utc>) -> Result<Vec<ParcelVersion>> {
        // Boxes from the index, then the exact test (boundary included, as ST_Intersects).
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM parcel_version v \
             WHERE v.min_lon <= ?1 AND v.max_lon >= ?1 AND v.min_lat <= ?2 AND v.max_lat >= ?2 \
             AND v.valid_from <= ?3 AND (v.valid_to IS NULL OR v.valid_to > ?3) ORDER BY v.id"
        );
        let candidates = self.fetch_versions(sqlx::query(&sql).bind(lon).bind(lat).bind(timestamp(when))).await?;
        let point = geo::Point::new(lon, lat);
        Ok(candidates.into_iter().filter(|v| geo::Intersects::intersects(&v.parcel.geometry, &point)).collect())
    }

    async fn valid_during(
        &self,
        period: Period,
        bbox: Option<geo::Rect<f64>>,
        after: Option<VersionId>,
        limit: usize,
    ) -> Result<Vec<ParcelVersion>> {
        // Boxes from the index, then the exact test; a version is valid from valid_from up to,
        // not including, valid_to. Rows are read in pages so that the exact test cannot leave a
        // page short while more versions match.
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM parcel_version v \
             WHERE v.id > ?1 AND (?2 IS NULL OR v.valid_to IS NULL OR v.valid_to > ?2) \
             AND (?3 IS NULL OR v.valid_from <= ?3) \
             AND (?4 IS NULL OR (v.max_lon >= ?4 AND v.max_lat >= ?5 AND v.min_lon <= ?6 AND v.min_lat <= ?7)) \
             ORDER BY v.id LIMIT ?8"
        );
        let corner = |f: fn(&geo::Rect<f64>) -> f64| bbox.as_ref().map(f);
        let mut found = Vec::new();
        let mut cursor = after.map_or(0, |v| v.0);
        let page = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        loop {
            let rows = self
                .fetch_versions(
                    sqlx::query(&sql)
                        .bind(cursor)
                        .bind(period.start.map(timestamp))
                        .bind(period.end.map(timestamp))
                        .bind(corner(|r| r.min().x))
                        .bind(corner(|r| r.min().y))
                        .bind(corner(|r| r.max().x))
                        .bind(corner(|r| r.max().y))
                        .bind(page),
                )
                .await?;
            let exhausted = rows.len() < limit.max(1);
            cursor = rows.last().map_or(cursor, |v| v.id.0);
            found.extend(
                rows.into_iter()
                    .filter(|v| bbox.is_none_or(|r| geo::Intersects::intersects(&v.parcel.geometry, &r.to_polygon()))),
            );
            if exhausted || found.len() >= limit {
                found.truncate(limit);
                return Ok(found);
            }
        }
    }

    async fn analyze(&self) -> Result<()> {
        sqlx::query("ANALYZE").execute(&self.pool).await?;
        Ok(())
    }

    async fn versions(&self, ids: &[VersionId]) -> Result<Vec<ParcelVersion>> {
        // SQLite binds at most a few thousand parameters: a JSON array of IDs is one.
        let raw = serde_json::Value::from(ids.iter().map(|v| v.0).collect::<Vec<_>>()).to_string();
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM parcel_version v WHERE v.id IN (SELECT value FROM json_each(?)) ORDER BY v.id"
        );
        self.fetch_versions(sqlx::query(&sql).bind(raw)).await
    }

    async fn current_by_key(&self, key: &ParcelKey) -> Result<Option<ParcelVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM parcel_version v \
             WHERE v.commune_code = ? AND v.sheet = ? AND v.parcel_no = ? AND v.valid_to IS NULL"
        );
        Ok(self
            .fetch_versions(
                sqlx::query(&sql)
                    .bind(key.commune.as_str().to_owned())
                    .bind(key.sheet.clone())
                    .bind(key.number.clone()),
            )
            .await?
            .pop())
    }

    async fn current_by_national_id(&self, id: &NationalParcelId) -> Result<Vec<ParcelVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM parcel_version v WHERE v.national_id = ? AND v.valid_to IS NULL ORDER BY v.id"
        );
        self.fetch_versions(sqlx::query(&sql).bind(id.as_str().to_owned())).await
    }

    async fn history(&self, key: &ParcelKey) -> Result<Vec<ParcelVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM parcel_version v \
             WHERE v.commune_code = ? AND v.sheet = ? AND v.parcel_no = ? ORDER BY v.valid_from, v.id"
        );
        self.fetch_versions(
            sqlx::query(&sql).bind(key.commune.as_str().to_owned()).bind(key.sheet.clone()).bind(key.number.clone()),
        )
        .await
    }

    async fn successors(&self, id: VersionId) -> Result<Vec<VersionId>> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT version_id FROM parcel_lineage WHERE parent_id = ? ORDER BY version_id")
                .bind(id.0)
                .fetch_all(&self.pool)
                .await?;
        Ok(ids.into_iter().map(VersionId).collect())
    }

    async fn children_of(&self, parents: &[VersionId]) -> Result<Vec<(VersionId, VersionId)>> {
        // The ids as one JSON array: no limit on how many a statement may bind.
        let raw = serde_json::to_string(&parents.iter().map(|v| v.0).collect::<Vec<i64>>())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT parent_id, version_id FROM parcel_lineage \
             WHERE parent_id IN (SELECT value FROM json_each(?)) ORDER BY parent_id, version_id",
        )
        .bind(raw)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(p, c)| (VersionId(p), VersionId(c))).collect())
    }

    async fn right_holders(&self, id: VersionId) -> Result<Vec<RightHolder>> {
        let rows = sqlx::query(
            "SELECT version_id, ordinal, key_id, sealed FROM right_holder WHERE version_id = ? ORDER BY ordinal",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| holder_from_row(r, &self.keyring)).collect()
    }

    async fn versions_held_by(&self, citizen: &CitizenId) -> Result<Vec<VersionId>> {
        let mut in_use = self.keys_in_use.last_seen();
        loop {
            let indexes = crate::data_keys::citizen_indexes(&self.keyring, &in_use, citizen.as_str())?;
            // One statement, one snapshot: the keys in use and the rows under them.
            let marks = vec!["?"; indexes.len()].join(", ");
            let sql = format!(
                "SELECT (SELECT json_group_array(id) FROM (SELECT id FROM data_key WHERE state <> 'retired' ORDER BY id)) AS keys, \
                 (SELECT json_group_array(version_id) FROM (SELECT DISTINCT version_id FROM right_holder \
                 WHERE citizen_index IN ({marks}) ORDER BY version_id)) AS versions"
            );
            let mut query = sqlx::query(&sql);
            for index in &indexes {
                query = query.bind(index);
            }
            let row = query.fetch_one(&self.pool).await?;
            let list = |column: &str| -> Result<Vec<i64>> {
                serde_json::from_value(json(row.try_get(column)?)?)
                    .map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
            };
            match self.keys_in_use.confirm(&in_use, list("keys")?) {
                Ok(()) => return Ok(list("versions")?.into_iter().map(VersionId).collect()),
                Err(now) => in_use = now,
            }
        }
    }

    async fn rotate_data_key(&self) -> Result<Rotation> {
        rotate(&self.pool, &self.keyring).await
    }

    async fn current_page(&self, after: Option<VersionId>, limit: usize) -> Result<Vec<ParcelVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM parcel_version v WHERE v.valid_to IS NULL AND v.id > ? ORDER BY v.id LIMIT ?"
        );
        let after = after.map_or(0, |v| v.0);
        self.fetch_versions(sqlx::query(&sql).bind(after).bind(i64::try_from(limit).unwrap_or(i64::MAX))).await
    }

    async fn count_current(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM parcel_version WHERE valid_to IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn current_in_communes(&self, communes: &[CommuneCode]) -> Result<Vec<CurrentEntry>> {
        let mut out = Vec::new();
        for commune in communes {
            let rows = sqlx::query(
                "SELECT id, commune_code, sheet, parcel_no, fingerprint FROM parcel_version \
                 WHERE valid_to IS NULL AND commune_code = ? ORDER BY id",
            )
            .bind(commune.as_str())
            .fetch_all(&self.pool)
            .await?;
            for r in &rows {
                out.push(crate::current_entry(
                    r.try_get("id")?,
                    r.try_get("commune_code")?,
                    r.try_get("sheet")?,
                    r.try_get("parcel_no")?,
                    r.try_get("fingerprint")?,
                )?);
            }
        }
        out.sort_by_key(|e| e.version);
        Ok(out)
    }

    async fn quarantined(&self, batch: BatchId) -> Result<Vec<QuarantinedRecord>> {
        let rows = sqlx::query(
            "SELECT id, file, layer, feature, parcel_key, reasons, key_id, sealed_source FROM quarantine WHERE batch_id = ? ORDER BY id",
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
                    reasons: json(r.try_get("reasons")?)?,
                    source: self
                        .keyring
                        .key(r.try_get("key_id")?)?
                        .open_source(r.try_get("id")?, r.try_get::<&[u8], _>("sealed_source")?)?,
                })
            })
            .collect()
    }

    async fn batch(&self, id: BatchId) -> Result<Option<BatchInfo>> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM import_batch WHERE id = ?");
        sqlx::query(&sql).bind(id.0).fetch_optional(&self.pool).await?.as_ref().map(batch_from_row).transpose()
    }

    async fn batch_by_content_hash(&self, hash: &str) -> Result<Option<BatchInfo>> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM import_batch WHERE content_hash = ?");
        sqlx::query(&sql).bind(hash).fetch_optional(&self.pool).await?.as_ref().map(batch_from_row).transpose()
    }

    async fn latest_batch_of(&self, source: &str) -> Result<Option<BatchInfo>> {
        let sql = format!(
            "SELECT {BATCH_COLUMNS} FROM import_batch WHERE source = ? AND committed_at IS NOT NULL ORDER BY id DESC LIMIT 1"
        );
        sqlx::query(&sql).bind(source).fetch_optional(&self.pool).await?.as_ref().map(batch_from_row).transpose()
    }

    async fn changes_since(&self, after: FeedPosition, limit: usize) -> Result<Vec<ParcelChange>> {
        let rows = sqlx::query(
            "SELECT seq, batch_id, kind, version_id, national_id, commune_code FROM parcel_change \
             WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(after.0)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
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
            sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM parcel_change").fetch_one(&self.pool).await?;
        Ok(FeedPosition(seq))
    }

    async fn feed_waiter(&self) -> Result<PollingWaiter> {
        Ok(PollingWaiter { interval: POLL_INTERVAL })
    }
}

/// SQLite has no LISTEN: a follower sleeps a short interval and reads the feed again.
#[derive(Debug)]
pub struct PollingWaiter {
    interval: Duration,
}

impl FeedWaiter for PollingWaiter {
    async fn wait(&mut self, timeout: Duration) -> Result<()> {
        tokio::time::sleep(self.interval.min(timeout)).await;
        Ok(())
    }
}

/// One import batch in the embedded store.
#[derive(Debug)]
pub struct SqliteBatch {
    tx: Transaction<'static, Sqlite>,
    _writer: OwnedMutexGuard<()>,
    id: BatchId,
    started_at: DateTime<Utc>,
    failed: Option<String>,
    /// The database's active data key when the batch began: what its right holders are sealed under.
    key: DataKey,
    keyring: Arc<Keyring>,
}

impl SqliteBatch {
    fn check_usable(&self) -> Result<()> {
        match &self.failed {
            Some(reason) => Err(StoreError::BatchFailed(reason.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, err: StoreError) -> StoreError {
        self.failed = Some(err.to_string());
        err
    }

    async fn retirable(&mut self, ids: &[VersionId]) -> Result<Vec<i64>> {
        let mut current = Vec::new();
        for id in ids {
            let row =
                sqlx::query("SELECT valid_to IS NULL AS current, retired_by_batch FROM parcel_version WHERE id = ?")
                    .bind(id.0)
                    .fetch_optional(&mut *self.tx)
                    .await?;
            let ok = match row {
                Some(r) if r.try_get::<bool, _>("current")? => {
                    current.push(id.0);
                    true
                }
                Some(r) => r.try_get::<Option<i64>, _>("retired_by_batch")? == Some(self.id.0),
                None => false,
            };
            if !ok {
                return Err(StoreError::NotCurrent(*id));
            }
        }
        current.sort_unstable();
        current.dedup();
        Ok(current)
    }

    async fn retire_current(&mut self, ids: &[i64]) -> Result<()> {
        for id in ids {
            sqlx::query(
                "UPDATE parcel_version SET valid_to = ?, retired_by_batch = ? WHERE id = ? AND valid_to IS NULL",
            )
            .bind(timestamp(self.started_at))
            .bind(self.id.0)
            .bind(id)
            .execute(&mut *self.tx)
            .await
            .map_err(|e| self.fail(e.into()))?;
        }
        Ok(())
    }

    async fn insert_one(&mut self, parcel: &Parcel) -> Result<VersionId> {
        let bbox = geometry::bbox(&parcel.geometry)
            .ok_or_else(|| StoreError::Corrupt(format!("parcel {} has an empty geometry", parcel.key)))?;
        let land_use: Vec<&str> = parcel.land_use.iter().map(|c| c.as_str()).collect();
        // One WKB for the stored geometry and the fingerprint.
        let wkb = geometry::to_wkb(&parcel.geometry);
        let fingerprint = crate::fingerprint::fingerprint_with_wkb(parcel, &wkb);
        let inserted = sqlx::query_scalar::<_, i64>(
            "INSERT INTO parcel_version (national_id, commune_code, sheet, parcel_no, commune_code_received, \
             province_code, land_use, legal_area_m2, measured_area_m2, geometry_area_m2, address, certificate_no, \
             source_crs, extra, geom, min_lon, min_lat, max_lon, max_lat, valid_from, batch_id, fingerprint) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(parcel.national_id.as_str())
        .bind(parcel.key.commune.as_str())
        .bind(&parcel.key.sheet)
        .bind(&parcel.key.number)
        .bind(&parcel.commune_code_received)
        .bind(parcel.province.as_str())
        .bind(serde_json::to_string(&land_use).unwrap_or_else(|_| "[]".into()))
        .bind(parcel.legal_area_m2)
        .bind(parcel.measured_area_m2)
        .bind(parcel.geometry_area_m2)
        .bind(&parcel.address)
        .bind(&parcel.certificate_no)
        .bind(&parcel.source_crs)
        .bind(serde_json::to_string(&parcel.extra).unwrap_or_else(|_| "{}".into()))
        .bind(wkb)
        .bind(bbox.min().x)
        .bind(bbox.min().y)
        .bind(bbox.max().x)
        .bind(bbox.max().y)
        .bind(timestamp(self.started_at))
        .bind(self.id.0)
        .bind(fingerprint)
        .fetch_one(&mut *self.tx)
        .await;
        let id = match inserted {
            Ok(id) => id,
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                return Err(self.fail(StoreError::CurrentParcelExists { key: parcel.key.to_string() }));
            }
            Err(e) => return Err(self.fail(e.into())),
        };
        for (ordinal, holder) in parcel.right_holders.iter().enumerate() {
            let ordinal = i16::try_from(ordinal).unwrap_or(i16::MAX);
            let sealed = self.key.seal_holder(id, ordinal, holder);
            sqlx::query(
                "INSERT INTO right_holder (version_id, ordinal, key_id, sealed, citizen_index) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(ordinal)
            .bind(sealed.key_id)
            .bind(sealed.sealed)
            .bind(sealed.citizen_index)
            .execute(&mut *self.tx)
            .await
            .map_err(|e| self.fail(e.into()))?;
        }
        Ok(VersionId(id))
    }
}

impl BatchWriter for SqliteBatch {
    fn id(&self) -> BatchId {
        self.id
    }

    fn effective_at(&self) -> DateTime<Utc> {
        self.started_at
    }

    async fn insert(&mut self, parcels: &[Parcel]) -> Result<Vec<VersionId>> {
        self.check_usable()?;
        let mut ids = Vec::with_capacity(parcels.len());
        for parcel in parcels {
            ids.push(self.insert_one(parcel).await?);
        }
        Ok(ids)
    }

    async fn supersede(&mut self, parcel: &Parcel, replaces: &[VersionId]) -> Result<VersionId> {
        self.check_usable()?;
        let current = self.retirable(replaces).await?;
        self.retire_current(&current).await?;
        let id = self.insert_one(parcel).await?;
        for parent in replaces {
            sqlx::query("INSERT OR IGNORE INTO parcel_lineage (version_id, parent_id) VALUES (?, ?)")
                .bind(id.0)
                .bind(parent.0)
                .execute(&mut *self.tx)
                .await
                .map_err(|e| self.fail(e.into()))?;
        }
        Ok(id)
    }

    async fn retire(&mut self, versions: &[VersionId]) -> Result<()> {
        self.check_usable()?;
        let current = self.retirable(versions).await?;
        self.retire_current(&current).await
    }

    async fn withdraw(&mut self, versions: &[VersionId]) -> Result<Vec<Parcel>> {
        self.check_usable()?;
        let mut found: Vec<ParcelVersion> = Vec::with_capacity(versions.len());
        let sql = format!("SELECT {VERSION_COLUMNS} FROM parcel_version v WHERE v.id = ? AND v.batch_id = ?");
        for id in versions {
            let row = sqlx::query(&sql)
                .bind(id.0)
                .bind(self.id.0)
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(|e| self.fail(e.into()))?;
            let Some(row) = row else { return Err(StoreError::NotInBatch(*id)) };
            let mut version = version_from_row(&row)?;
            let holders = sqlx::query(
                "SELECT version_id, ordinal, key_id, sealed FROM right_holder WHERE version_id = ? ORDER BY ordinal",
            )
            .bind(id.0)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(|e| self.fail(e.into()))?;
            for h in &holders {
                version.parcel.right_holders.push(holder_from_row(h, &self.keyring)?);
            }
            // The version goes before its parents come back: one key has one current version.
            for sql in [
                "DELETE FROM right_holder WHERE version_id = ?",
                "DELETE FROM parcel_lineage WHERE version_id = ?",
                "DELETE FROM parcel_version WHERE id = ?",
            ] {
                sqlx::query(sql).bind(id.0).execute(&mut *self.tx).await.map_err(|e| self.fail(e.into()))?;
            }
            for parent in &version.lineage {
                sqlx::query(
                    "UPDATE parcel_version SET valid_to = NULL, retired_by_batch = NULL WHERE id = ? AND retired_by_batch = ? \
                     AND NOT EXISTS (SELECT 1 FROM parcel_lineage l WHERE l.parent_id = parcel_version.id)",
                )
                .bind(parent.0)
                .bind(self.id.0)
                .execute(&mut *self.tx)
                .await
                .map_err(|e| self.fail(e.into()))?;
            }
            found.push(version);
        }
        Ok(found.into_iter().map(|v| v.parcel).collect())
    }

    async fn quarantine(&mut self, records: &[QuarantinedRecord]) -> Result<()> {
        self.check_usable()?;
        for r in records {
            // The row's id first: the sealed source is bound to it.
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO quarantine (batch_id, file, layer, feature, parcel_key, reasons, key_id, sealed_source) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, x'') RETURNING id",
            )
            .bind(self.id.0)
            .bind(&r.file)
            .bind(&r.layer)
            .bind(r.feature)
            .bind(&r.parcel_key)
            .bind(r.reasons.to_string())
            .bind(self.key.id())
            .fetch_one(&mut *self.tx)
            .await
            .map_err(|e| self.fail(e.into()))?;
            sqlx::query("UPDATE quarantine SET sealed_source = ? WHERE id = ?")
                .bind(self.key.seal_source(id, &r.source))
                .bind(id)
                .execute(&mut *self.tx)
                .await
                .map_err(|e| self.fail(e.into()))?;
        }
        Ok(())
    }

    async fn commit(mut self, summary: serde_json::Value) -> Result<BatchInfo> {
        self.check_usable()?;
        let id = self.id.0;
        let now = timestamp(Utc::now());
        for kind in ["retired", "created"] {
            let column = if kind == "retired" { "retired_by_batch" } else { "batch_id" };
            let sql = format!(
                "INSERT INTO parcel_change (batch_id, kind, version_id, national_id, commune_code, changed_at) \
                 SELECT ?, '{kind}', id, national_id, commune_code, ? FROM parcel_version WHERE {column} = ? ORDER BY id"
            );
            sqlx::query(&sql).bind(id).bind(&now).bind(id).execute(&mut *self.tx).await?;
        }
        let sql = format!(
            "UPDATE import_batch SET committed_at = ?1, summary = ?2, \
             province_code = coalesce(province_code, json_extract(?2, '$.province')) WHERE id = ?3 RETURNING {BATCH_COLUMNS}"
        );
        let row = sqlx::query(&sql).bind(&now).bind(summary.to_string()).bind(id).fetch_one(&mut *self.tx).await?;
        let info = batch_from_row(&row)?;
        self.tx.commit().await?;
        Ok(info)
    }

    async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}
