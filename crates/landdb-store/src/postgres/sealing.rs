//! Which data keys this database's right holders are sealed under, the sealing of rows written
//! before they were (migration 13), and the online rotation to a new key (see
//! [`crate::data_keys`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Postgres, Row, Transaction};

use super::{MIGRATIONS, SEAL_LOCK};

/// Held by the one rotation of a database's data key that may run.
const ROTATE_LOCK: i64 = 0x6c61_6e64_6462_524f; // "landdbRO"
use crate::data_keys::{DataKey, KeyState, Keyring, RegisteredKey, Rotation, check_registered, rotation_start};
use crate::{Result, StoreError};

/// Rows resealed in one transaction: short enough for readers and imports never to wait long.
const RESEAL_CHUNK: i64 = 2_000;

async fn registered(conn: &mut PgConnection, lock: &str) -> Result<Vec<RegisteredKey>> {
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as(&format!("SELECT id, check_value, state FROM data_key ORDER BY since, id {lock}"))
            .fetch_all(conn)
            .await?;
    rows.into_iter().map(RegisteredKey::from_row).collect()
}

/// The active key, checked against the keyring (`lock`: `FOR SHARE` to hold it for a batch).
pub(super) async fn active_key(
    tx: &mut Transaction<'static, Postgres>,
    keyring: &Keyring,
    lock: &str,
) -> Result<DataKey> {
    let keys = registered(tx, lock).await?;
    if keys.iter().any(|k| k.state == KeyState::Active) {
        return check_registered(keyring, &keys);
    }
    // A rotation committed while this statement waited for its lock: the old key came back as
    // retiring, and the key the rotation made active is newer than the statement's snapshot.
    // The next statement sees it.
    check_registered(keyring, &registered(tx, lock).await?)
}

/// A database that has no data key yet takes the keyring's newest (two processes at once: one
/// wins, the other finds it); then every key it records is checked against the keyring.
pub(super) async fn register_data_key(pool: &PgPool, keyring: &Keyring) -> Result<()> {
    let newest = keyring.newest()?;
    sqlx::query(
        "INSERT INTO data_key (id, check_value, state) SELECT $1, $2, 'active' \
         WHERE NOT EXISTS (SELECT 1 FROM data_key) ON CONFLICT DO NOTHING",
    )
    .bind(newest.id())
    .bind(newest.check_value())
    .execute(pool)
    .await?;
    let mut conn = pool.acquire().await?;
    check_registered(keyring, &registered(&mut conn, "").await?)?;
    Ok(())
}

/// Seals the right holders and quarantined records written in clear before migration 13, under
/// the active key, unless migration 14 (which drops the clear columns) already ran.
pub(super) async fn seal_clear_rows(pool: &PgPool, keyring: &Keyring) -> Result<()> {
    let last = MIGRATIONS.last().map_or(0, |m| m.0);
    let mut lock = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)").bind(SEAL_LOCK).execute(&mut *lock).await?;
    let done: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM _sqlx_migrations WHERE version = $1 AND success)")
            .bind(last)
            .fetch_one(&mut *lock)
            .await?;
    let result = if done { Ok(()) } else { seal_all(pool, keyring).await };
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(SEAL_LOCK).execute(&mut *lock).await?;
    result
}

/// One transaction of work on at most [`RESEAL_CHUNK`] rows, returning how many it did.
/// It is handed the transaction and hands it back.
type Step<'k> = Box<dyn FnMut(Tx) -> futures::future::BoxFuture<'k, Result<(Tx, u64)>> + Send + 'k>;
type Tx = Transaction<'static, Postgres>;

/// Runs `step` in a short transaction of its own, again and again until it finds nothing left to
/// do: readers and imports never wait long behind it. Returns the rows done in all.
async fn in_chunks(pool: &PgPool, mut step: Step<'_>) -> Result<u64> {
    let mut done = 0;
    loop {
        let (tx, n) = step(pool.begin().await?).await?;
        if n == 0 {
            return Ok(done);
        }
        tx.commit().await?;
        done += n;
    }
}

async fn seal_all(pool: &PgPool, keyring: &Keyring) -> Result<()> {
    let holders = in_chunks(
        pool,
        Box::new(|mut tx: Tx| {
            Box::pin(async move {
                let key = active_key(&mut tx, keyring, "").await?;
                let rows = sqlx::query(
                    "SELECT version_id, ordinal, name, citizen_id, birth_year, address FROM right_holder \
                     WHERE sealed IS NULL ORDER BY version_id, ordinal LIMIT $1",
                )
                .bind(RESEAL_CHUNK)
                .fetch_all(&mut *tx)
                .await?;
                let mut update = HolderUpdate::default();
                for r in &rows {
                    let holder = landdb_model::RightHolder {
                        name: r.try_get::<Option<String>, _>("name")?.unwrap_or_default(),
                        citizen_id: r.try_get("citizen_id")?,
                        birth_year: r.try_get("birth_year")?,
                        address: r.try_get("address")?,
                    };
                    update.push(&key, r.try_get("version_id")?, r.try_get("ordinal")?, &holder);
                }
                let n = update.run(&mut tx, true).await?;
                Ok((tx, n))
            })
        }),
    )
    .await?;
    let quarantined = in_chunks(
        pool,
        Box::new(|mut tx: Tx| {
            Box::pin(async move {
                let key = active_key(&mut tx, keyring, "").await?;
                let rows =
                    sqlx::query("SELECT id, source FROM quarantine WHERE sealed_source IS NULL ORDER BY id LIMIT $1")
                        .bind(RESEAL_CHUNK)
                        .fetch_all(&mut *tx)
                        .await?;
                let mut update = SourceUpdate::default();
                for r in &rows {
                    let source: Option<serde_json::Value> = r.try_get("source")?;
                    update.push(&key, r.try_get("id")?, &source.unwrap_or_default());
                }
                let n = update.run(&mut tx).await?;
                Ok((tx, n))
            })
        }),
    )
    .await?;
    if holders + quarantined > 0 {
        tracing::info!(
            holders,
            quarantined,
            "sealed right holders and quarantined records written before migration 13"
        );
    }
    Ok(())
}

/// New sealed content for many right-holder rows, written in one statement.
#[derive(Default)]
struct HolderUpdate {
    versions: Vec<i64>,
    ordinals: Vec<i16>,
    keys: Vec<i64>,
    sealed: Vec<Vec<u8>>,
    indexes: Vec<Option<Vec<u8>>>,
}

impl HolderUpdate {
    fn push(&mut self, key: &DataKey, version: i64, ordinal: i16, holder: &landdb_model::RightHolder) {
        let s = key.seal_holder(version, ordinal, holder);
        self.versions.push(version);
        self.ordinals.push(ordinal);
        self.keys.push(s.key_id);
        self.sealed.push(s.sealed);
        self.indexes.push(s.citizen_index);
    }

    /// `clear`: also empty the clear columns (before migration 14 drops them).
    async fn run(self, tx: &mut Transaction<'static, Postgres>, clear: bool) -> Result<u64> {
        if self.versions.is_empty() {
            return Ok(0);
        }
        let clear = if clear { ", name = NULL, citizen_id = NULL, birth_year = NULL, address = NULL" } else { "" };
        let done = sqlx::query(&format!(
            "UPDATE right_holder r SET key_id = u.k, sealed = u.s, citizen_index = u.i{clear} \
             FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::bytea[], $5::bytea[]) AS u(v, o, k, s, i) \
             WHERE r.version_id = u.v AND r.ordinal = u.o"
        ))
        .bind(&self.versions)
        .bind(&self.ordinals)
        .bind(&self.keys)
        .bind(&self.sealed)
        .bind(&self.indexes)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected())
    }
}

/// New sealed sources for many quarantine rows.
#[derive(Default)]
struct SourceUpdate {
    ids: Vec<i64>,
    keys: Vec<i64>,
    sealed: Vec<Vec<u8>>,
}

impl SourceUpdate {
    fn push(&mut self, key: &DataKey, id: i64, source: &serde_json::Value) {
        self.ids.push(id);
        self.keys.push(key.id());
        self.sealed.push(key.seal_source(id, source));
    }

    async fn run(self, tx: &mut Transaction<'static, Postgres>) -> Result<u64> {
        if self.ids.is_empty() {
            return Ok(0);
        }
        let done = sqlx::query(
            "UPDATE quarantine q SET key_id = u.k, sealed_source = u.s \
             FROM unnest($1::bigint[], $2::bigint[], $3::bytea[]) AS u(id, k, s) WHERE q.id = u.id",
        )
        .bind(&self.ids)
        .bind(&self.keys)
        .bind(&self.sealed)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected())
    }
}

/// Makes a new key and reseals every row under it, online: readers open rows under either key
/// throughout, imports that began under the old key finish first (the new key waits for their
/// share lock), and rows are resealed in short transactions.
pub(super) async fn rotate(pool: &PgPool, keyring: &Keyring) -> Result<Rotation> {
    // One rotation at a time: held on a connection of its own until the end.
    let mut lock = pool.acquire().await?;
    let alone: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(ROTATE_LOCK).fetch_one(&mut *lock).await?;
    if !alone {
        return Err(StoreError::Corrupt("another rotation of this database's data key is running: wait for it".into()));
    }
    let result = rotate_alone(pool, keyring).await;
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(ROTATE_LOCK).execute(&mut *lock).await?;
    result
}

async fn rotate_alone(pool: &PgPool, keyring: &Keyring) -> Result<Rotation> {
    let mut tx = pool.begin().await?;
    let (resume, from) = rotation_start(keyring, &registered(&mut tx, "FOR UPDATE").await?)?;
    let new = if let Some(key) = resume {
        key
    } else {
        let new = keyring.add()?;
        sqlx::query("UPDATE data_key SET state = 'retiring' WHERE state = 'active'").execute(&mut *tx).await?;
        sqlx::query("INSERT INTO data_key (id, check_value, state) VALUES ($1, $2, 'active')")
            .bind(new.id())
            .bind(new.check_value())
            .execute(&mut *tx)
            .await?;
        new
    };
    tx.commit().await?;

    // Walked in key order once, a chunk a transaction: a row written after the walk passed it
    // is under the new key already (imports that began under the old one finished before the
    // new key was made active: their share lock on `data_key` held it back).
    let new = &new;
    let (holders, at) = (AtomicU64::new(0), Mutex::new((i64::MIN, i16::MIN)));
    in_chunks(
        pool,
        Box::new(|mut tx: Tx| {
            let (holders, at) = (&holders, &at);
            Box::pin(async move {
                let (version, ordinal) = *at.lock().unwrap_or_else(PoisonError::into_inner);
                let rows = sqlx::query(
                    "SELECT version_id, ordinal, key_id, sealed FROM right_holder WHERE (version_id, ordinal) > ($1, $2) \
                     ORDER BY version_id, ordinal LIMIT $3",
                )
                .bind(version)
                .bind(ordinal)
                .bind(RESEAL_CHUNK)
                .fetch_all(&mut *tx)
                .await?;
                let mut update = HolderUpdate::default();
                for r in &rows {
                    let (version, ordinal) = (r.try_get("version_id")?, r.try_get("ordinal")?);
                    *at.lock().unwrap_or_else(PoisonError::into_inner) = (version, ordinal);
                    let key: i64 = r.try_get("key_id")?;
                    if key != new.id() {
                        let holder = keyring.key(key)?.open_holder(version, ordinal, r.try_get("sealed")?)?;
                        update.push(new, version, ordinal, &holder);
                    }
                }
                holders.fetch_add(update.run(&mut tx, false).await?, Ordering::Relaxed);
                Ok((tx, rows.len() as u64))
            })
        }),
    )
    .await?;
    let (quarantined, at) = (AtomicU64::new(0), Mutex::new(i64::MIN));
    in_chunks(
        pool,
        Box::new(|mut tx: Tx| {
            let (quarantined, at) = (&quarantined, &at);
            Box::pin(async move {
                let after = *at.lock().unwrap_or_else(PoisonError::into_inner);
                let rows =
                    sqlx::query("SELECT id, key_id, sealed_source FROM quarantine WHERE id > $1 ORDER BY id LIMIT $2")
                        .bind(after)
                        .bind(RESEAL_CHUNK)
                        .fetch_all(&mut *tx)
                        .await?;
                let mut update = SourceUpdate::default();
                for r in &rows {
                    let id = r.try_get("id")?;
                    *at.lock().unwrap_or_else(PoisonError::into_inner) = id;
                    let key: i64 = r.try_get("key_id")?;
                    if key != new.id() {
                        let source = keyring.key(key)?.open_source(id, r.try_get("sealed_source")?)?;
                        update.push(new, id, &source);
                    }
                }
                quarantined.fetch_add(update.run(&mut tx).await?, Ordering::Relaxed);
                Ok((tx, rows.len() as u64))
            })
        }),
    )
    .await?;
    let (holders, quarantined) = (holders.into_inner(), quarantined.into_inner());
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM right_holder WHERE key_id <> $1) + (SELECT count(*) FROM quarantine WHERE key_id <> $1)",
    )
    .bind(new.id())
    .fetch_one(pool)
    .await?;
    if left > 0 {
        return Err(StoreError::Corrupt(format!(
            "{left} rows are still sealed under the old key (another rotation at the same time?): run `landdb keys rotate-data-key` again"
        )));
    }
    sqlx::query("UPDATE data_key SET state = 'retired' WHERE state = 'retiring'").execute(pool).await?;
    Ok(Rotation { from, to: new.name(), holders, quarantined })
}
