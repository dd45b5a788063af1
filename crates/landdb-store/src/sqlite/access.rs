//! [`AccessStore`] on the embedded store (as the PostGIS one; timestamps as RFC 3339 text).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use landdb_access::audit::GENESIS;
use landdb_access::{Agency, AuditEntry, AuditEvent, KeyRecord};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, parse_timestamp, timestamp};
use crate::Result;
use crate::access::{AccessStore, AuditQuery, personal_from, personal_text, policy_from, role_from};

const BUMP: &str = "UPDATE access_generation SET generation = generation + 1 WHERE id = 1";

fn optional_time(r: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>> {
    r.try_get::<Option<&str>, _>(column)?.map(parse_timestamp).transpose()
}

fn key_from_row(r: &SqliteRow) -> Result<KeyRecord> {
    Ok(KeyRecord {
        id: r.try_get("id")?,
        agency: r.try_get("agency")?,
        hash: r.try_get("hash")?,
        created_at: parse_timestamp(r.try_get("created_at")?)?,
        expires_at: optional_time(r, "expires_at")?,
        revoked_at: optional_time(r, "revoked_at")?,
    })
}

fn entry_from_row(r: &SqliteRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.try_get("seq")?,
        event: AuditEvent {
            at: parse_timestamp(r.try_get("at")?)?,
            agency: r.try_get::<String, _>("agency")?.into(),
            key_id: r.try_get::<String, _>("key_id")?.into(),
            method: r.try_get("method")?,
            endpoint: r.try_get("endpoint")?,
            params: r.try_get("params")?,
            purpose: r.try_get::<String, _>("purpose")?.into(),
            status: u16::try_from(r.try_get::<i64, _>("status")?).unwrap_or(0),
            parcels: u64::try_from(r.try_get::<i64, _>("parcels")?).unwrap_or(0),
            personal: personal_from(r.try_get("personal")?)?,
        },
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

impl AccessStore for SqliteStore {
    async fn put_agency(&self, a: &Agency) -> Result<()> {
        let policy = serde_json::to_string(&a.policy).map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO agency (name, title, role, policy, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (name) DO UPDATE SET title = excluded.title, role = excluded.role, policy = excluded.policy",
        )
        .bind(&a.name)
        .bind(&a.title)
        .bind(a.role.name())
        .bind(policy)
        .bind(timestamp(a.created_at))
        .execute(&mut *tx)
        .await?;
        sqlx::query(BUMP).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn agencies(&self) -> Result<Vec<Agency>> {
        let rows = sqlx::query("SELECT name, title, role, policy, created_at FROM agency ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let name: String = r.try_get("name")?;
                let policy = super::json(r.try_get("policy")?)?;
                Ok(Agency {
                    title: r.try_get("title")?,
                    role: role_from(r.try_get("role")?)?,
                    policy: policy_from(&name, policy)?,
                    created_at: parse_timestamp(r.try_get("created_at")?)?,
                    name,
                })
            })
            .collect()
    }

    async fn put_key(&self, k: &KeyRecord) -> Result<()> {
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO api_key (id, agency, hash, created_at, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&k.id)
        .bind(&k.agency)
        .bind(&k.hash)
        .bind(timestamp(k.created_at))
        .bind(k.expires_at.map(timestamp))
        .bind(k.revoked_at.map(timestamp))
        .execute(&mut *tx)
        .await?;
        sqlx::query(BUMP).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn end_key(
        &self,
        id: &str,
        revoked_at: Option<DateTime<Utc>>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE api_key SET revoked_at = COALESCE(?2, revoked_at), expires_at = COALESCE(?3, expires_at) WHERE id = ?1",
        )
        .bind(id)
        .bind(revoked_at.map(timestamp))
        .bind(expires_at.map(timestamp))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(BUMP).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query(
            "SELECT id, agency, hash, created_at, expires_at, revoked_at FROM api_key ORDER BY agency, created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn access_generation(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT generation FROM access_generation WHERE id = 1").fetch_one(&self.pool).await?)
    }

    async fn append_audit(&self, events: &[AuditEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        let mut tx = self.pool.begin().await?;
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_optional(&mut *tx).await?;
        let (mut seq, mut prev) = head.unwrap_or((0, GENESIS.to_owned()));
        for event in events {
            seq += 1;
            let entry = event.clone().chain(seq, &prev);
            let e = &entry.event;
            sqlx::query(
                "INSERT INTO audit_entry (seq, at, agency, key_id, method, endpoint, params, purpose, status, parcels, personal, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .bind(seq)
            .bind(timestamp(e.at))
            .bind(&*e.agency)
            .bind(&*e.key_id)
            .bind(&e.method)
            .bind(&e.endpoint)
            .bind(&e.params)
            .bind(&*e.purpose)
            .bind(i64::from(e.status))
            .bind(i64::try_from(e.parcels).unwrap_or(i64::MAX))
            .bind(personal_text(e))
            .bind(&entry.prev_hash)
            .bind(&entry.hash)
            .execute(&mut *tx)
            .await?;
            for v in &e.personal {
                sqlx::query("INSERT OR IGNORE INTO audit_disclosure (version_id, seq) VALUES (?1, ?2)")
                    .bind(v)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
            }
            prev = entry.hash;
        }
        sqlx::query(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .bind(seq)
        .bind(&prev)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_entries(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let disclosed = q.disclosed.as_ref().map(|d| serde_json::to_string(d).unwrap_or_else(|_| "[]".to_owned()));
        let rows = sqlx::query(
            "SELECT * FROM audit_entry e
             WHERE seq > ?1 AND (?2 IS NULL OR agency = ?2)
               AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR at < ?4)
               AND (?5 IS NULL OR EXISTS (SELECT 1 FROM audit_disclosure d
                    WHERE d.seq = e.seq AND d.version_id IN (SELECT value FROM json_each(?5))))
             ORDER BY seq LIMIT ?6",
        )
        .bind(q.after)
        .bind(&q.agency)
        .bind(q.since.map(timestamp))
        .bind(q.until.map(timestamp))
        .bind(disclosed)
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        Ok(sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_optional(&self.pool).await?)
    }

    async fn parcels_taken(&self, agency: &str, since: DateTime<Utc>) -> Result<u64> {
        let n: Option<i64> = sqlx::query_scalar("SELECT sum(parcels) FROM audit_entry WHERE agency = ?1 AND at >= ?2")
            .bind(agency)
            .bind(timestamp(since))
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
    }
}
