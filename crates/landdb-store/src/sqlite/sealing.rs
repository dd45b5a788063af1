//! The embedded store's data keys: as the PostGIS store's (`postgres/sealing.rs`), with SQLite's
//! one writer in place of row locks (a rotation's writes wait for a running import to commit).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{Row, Sqlite, Transaction};

use super::begin_writing;
use crate::data_keys::{DataKey, Keyring, RegisteredKey, Rotation, check_registered, rotation_start};
use crate::{Result, StoreError};

/// Rows resealed in one transaction.
const RESEAL_CHUNK: i64 = 2_000;

async fn registered(conn: &mut SqliteConnection) -> Result<Vec<RegisteredKey>> {
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, check_value, state FROM data_key ORDER BY since, id").fetch_all(conn).await?;
    rows.into_iter().map(RegisteredKey::from_row).collect()
}

pub(super) async fn active_key(tx: &mut Transaction<'static, Sqlite>, keyring: &Keyring) -> Result<DataKey> {
    check_registered(keyring, &registered(tx).await?)
}

pub(super) async fn register_data_key(pool: &SqlitePool, keyring: &Keyring) -> Result<()> {
    let newest = keyring.newest()?;
    let mut tx = begin_writing(pool).await?;
    sqlx::query(
        "INSERT OR IGNORE INTO data_key (id, check_value, state) SELECT ?, ?, 'active' WHERE NOT EXISTS (SELECT 1 FROM data_key)",
    )
    .bind(newest.id())
    .bind(newest.check_value())
    .execute(&mut *tx)
    .await?;
    check_registered(keyring, &registered(&mut tx).await?)?;
    tx.commit().await?;
    Ok(())
}

/// Seals what was written in clear before migration 10, unless migration `last` (which drops
/// the clear columns) already ran.
pub(super) async fn seal_clear_rows(pool: &SqlitePool, keyring: &Keyring, last: i64) -> Result<()> {
    let mut tx = begin_writing(pool).await?;
    let done: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM _sqlx_migrations WHERE version = ? AND success)")
        .bind(last)
        .fetch_one(&mut *tx)
        .await?;
    if done {
        return Ok(());
    }
    let key = active_key(&mut tx, keyring).await?;
    let rows = sqlx::query(
        "SELECT version_id, ordinal, name, citizen_id, birth_year, address FROM right_holder WHERE sealed IS NULL",
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in &rows {
        let holder = landdb_model::RightHolder {
            name: r.try_get("name")?,
            citizen_id: r.try_get("citizen_id")?,
            birth_year: r.try_get("birth_year")?,
            address: r.try_get("address")?,
        };
        let (version, ordinal): (i64, i16) = (r.try_get("version_id")?, r.try_get("ordinal")?);
        let s = key.seal_holder(version, ordinal, &holder);
        // The clear columns are NOT NULL until migration 11 drops them: emptied.
        sqlx::query(
            "UPDATE right_holder SET key_id = ?, sealed = ?, citizen_index = ?, name = '', citizen_id = NULL, \
             birth_year = NULL, address = NULL WHERE version_id = ? AND ordinal = ?",
        )
        .bind(s.key_id)
        .bind(s.sealed)
        .bind(s.citizen_index)
        .bind(version)
        .bind(ordinal)
        .execute(&mut *tx)
        .await?;
    }
    let sources =
        sqlx::query("SELECT id, source FROM quarantine WHERE sealed_source IS NULL").fetch_all(&mut *tx).await?;
    for r in &sources {
        let id: i64 = r.try_get("id")?;
        let source: serde_json::Value = super::json(r.try_get("source")?)?;
        sqlx::query("UPDATE quarantine SET key_id = ?, sealed_source = ?, source = '' WHERE id = ?")
            .bind(key.id())
            .bind(key.seal_source(id, &source))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    if !rows.is_empty() || !sources.is_empty() {
        tracing::info!(
            holders = rows.len(),
            quarantined = sources.len(),
            "sealed right holders and quarantined records written before migration 10"
        );
    }
    Ok(())
}

/// One write transaction of work on at most [`RESEAL_CHUNK`] rows: handed the transaction, it
/// hands it back with how many rows it did.
type Step<'k> = Box<dyn FnMut(Tx) -> futures::future::BoxFuture<'k, Result<(Tx, u64)>> + Send + 'k>;
type Tx = Transaction<'static, Sqlite>;

/// Runs `step` in write transactions of its own until it finds nothing left to do, so that
/// readers and imports go on between them. Returns the rows done in all.
async fn in_chunks(pool: &SqlitePool, mut step: Step<'_>) -> Result<u64> {
    let mut done = 0;
    loop {
        let (tx, n) = step(begin_writing(pool).await?).await?;
        if n == 0 {
            return Ok(done);
        }
        tx.commit().await?;
        done += n;
    }
}

/// Makes a new key and reseals every row under it, in short write transactions between which
/// readers and imports go on.
pub(super) async fn rotate(pool: &SqlitePool, keyring: &Keyring) -> Result<Rotation> {
    let mut tx = begin_writing(pool).await?;
    let (resume, from) = rotation_start(keyring, &registered(&mut tx).await?)?;
    let new = if let Some(key) = resume {
        key
    } else {
        let new = keyring.add()?;
        sqlx::query("UPDATE data_key SET state = 'retiring' WHERE state = 'active'").execute(&mut *tx).await?;
        sqlx::query("INSERT INTO data_key (id, check_value, state) VALUES (?, ?, 'active')")
            .bind(new.id())
            .bind(new.check_value())
            .execute(&mut *tx)
            .await?;
        new
    };
    tx.commit().await?;

    // Walked in key order once, a chunk a write transaction: a row written after the walk
    // passed it is under the new key already (an import holds the write lock from its start, so
    // one that began under the old key finished before the new key was made active).
    let new = &new;
    let (holders, at) = (AtomicU64::new(0), Mutex::new((i64::MIN, i16::MIN)));
    in_chunks(
        pool,
        Box::new(|mut tx: Tx| {
            let (holders, at) = (&holders, &at);
            Box::pin(async move {
                let (version, ordinal) = *at.lock().unwrap_or_else(PoisonError::into_inner);
                let rows = sqlx::query(
                    "SELECT version_id, ordinal, key_id, sealed FROM right_holder WHERE (version_id, ordinal) > (?, ?) \
                     ORDER BY version_id, ordinal LIMIT ?",
                )
                .bind(version)
                .bind(ordinal)
                .bind(RESEAL_CHUNK)
                .fetch_all(&mut *tx)
                .await?;
                for r in &rows {
                    let (version, ordinal): (i64, i16) = (r.try_get("version_id")?, r.try_get("ordinal")?);
                    *at.lock().unwrap_or_else(PoisonError::into_inner) = (version, ordinal);
                    let key: i64 = r.try_get("key_id")?;
                    if key == new.id() {
                        continue;
                    }
                    let holder = keyring.key(key)?.open_holder(version, ordinal, r.try_get("sealed")?)?;
                    let s = new.seal_holder(version, ordinal, &holder);
                    sqlx::query(
                        "UPDATE right_holder SET key_id = ?, sealed = ?, citizen_index = ? WHERE version_id = ? AND ordinal = ?",
                    )
                    .bind(s.key_id)
                    .bind(s.sealed)
                    .bind(s.citizen_index)
                    .bind(version)
                    .bind(ordinal)
                    .execute(&mut *tx)
                    .await?;
                    holders.fetch_add(1, Ordering::Relaxed);
                }
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
                    sqlx::query("SELECT id, key_id, sealed_source FROM quarantine WHERE id > ? ORDER BY id LIMIT ?")
                        .bind(after)
                        .bind(RESEAL_CHUNK)
                        .fetch_all(&mut *tx)
                        .await?;
                for r in &rows {
                    let id: i64 = r.try_get("id")?;
                    *at.lock().unwrap_or_else(PoisonError::into_inner) = id;
                    let key: i64 = r.try_get("key_id")?;
                    if key == new.id() {
                        continue;
                    }
                    let source = keyring.key(key)?.open_source(id, r.try_get("sealed_source")?)?;
                    sqlx::query("UPDATE quarantine SET key_id = ?, sealed_source = ? WHERE id = ?")
                        .bind(new.id())
                        .bind(new.seal_source(id, &source))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    quarantined.fetch_add(1, Ordering::Relaxed);
                }
                Ok((tx, rows.len() as u64))
            })
        }),
    )
    .await?;
    let (holders, quarantined) = (holders.into_inner(), quarantined.into_inner());
    let mut tx = begin_writing(pool).await?;
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM right_holder WHERE key_id <> ?1) + (SELECT count(*) FROM quarantine WHERE key_id <> ?1)",
    )
    .bind(new.id())
    .fetch_one(&mut *tx)
    .await?;
    if left > 0 {
        return Err(StoreError::Corrupt(format!(
            "{left} rows are still sealed under the old key: run `landdb keys rotate-data-key` again"
        )));
    }
    sqlx::query("UPDATE data_key SET state = 'retired' WHERE state = 'retiring'").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(Rotation { from, to: new.name(), holders, quarantined })
}
