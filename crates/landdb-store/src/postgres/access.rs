//! [`AccessStore`] on PostGIS.

use chrono::{DateTime, Utc};
use landdb_access::audit::GENESIS;
use landdb_access::{Agency, AuditEntry, AuditEvent, KeyRecord};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use crate::Result;
use crate::access::{AccessStore, AuditQuery, personal_from, policy_from, role_from};

/// The advisory lock that serialises appends to the audit chain across processes.
const AUDIT_LOCK: i64 = 0x6c61_6e64_6462_0a01;

const BUMP: &str = "UPDATE access_generation SET generation = generation + 1 WHERE id = 1";

fn key_from_row(r: &PgRow) -> Result<KeyRecord> {
    Ok(KeyRecord {
        id: r.try_get("id")?,
        agency: r.try_get("agency")?,
        hash: r.try_get("hash")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

fn entry_from_row(r: &PgRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.try_get("seq")?,
        event: AuditEvent {
            at: r.try_get("at")?,
            agency: r.try_get("agency")?,
            key_id: r.try_get("key_id")?,
            method: r.try_get("method")?,
            endpoint: r.try_get("endpoint")?,
            params: r.try_get("params")?,
            purpose: r.try_get("purpose")?,
            status: u16::try_from(r.try_get::<i32, _>("status")?).unwrap_or(0),
            parcels: u64::try_from(r.try_get::<i64, _>("parcels")?).unwrap_or(0),
            personal: personal_from(r.try_get("personal")?)?,
        },
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

impl AccessStore for PgStore {
    async fn put_agency(&self, a: &Agency) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO agency (name, title, role, policy, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET title = EXCLUDED.title, role = EXCLUDED.role, policy = EXCLUDED.policy",
        )
        .bind(&a.name)
        .bind(&a.title)
        .bind(a.role.name())
        .bind(sqlx::types::Json(&a.policy))
        .bind(a.created_at)
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
                Ok(Agency {
                    title: r.try_get("title")?,
                    role: role_from(r.try_get("role")?)?,
                    policy: policy_from(&name, r.try_get("policy")?)?,
                    created_at: r.try_get("created_at")?,
                    name,
                })
            })
            .collect()
    }

    async fn put_key(&self, k: &KeyRecord) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO api_key (id, agency, hash, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&k.id)
        .bind(&k.agency)
        .bind(&k.hash)
        .bind(k.created_at)
        .bind(k.expires_at)
        .bind(k.revoked_at)
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
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE api_key SET revoked_at = COALESCE($2, revoked_at), expires_at = COALESCE($3, expires_at) WHERE id = $1",
        )
        .bind(id)
        .bind(revoked_at)
        .bind(expires_at)
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(AUDIT_LOCK).execute(&mut *tx).await?;
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_optional(&mut *tx).await?;
        let (seq, prev) = head.unwrap_or((0, GENESIS.to_owned()));
        // COPY: the cheapest way into PostgreSQL, so that the log keeps up with tens of thousands
        // of requests a second without taking their cores.
        let (entries, disclosures, seq, prev) = super::copy::encode_audit(events, seq, prev);
        let mut sink = tx.copy_in_raw(super::copy::AUDIT_ENTRY).await?;
        sink.send(entries).await?;
        sink.finish().await?;
        if !disclosures.is_empty() {
            let mut sink = tx.copy_in_raw(super::copy::AUDIT_DISCLOSURE).await?;
            sink.send(disclosures).await?;
            sink.finish().await?;
        }
        sqlx::query(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash",
        )
        .bind(seq)
        .bind(&prev)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_entries(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_entry e
             WHERE seq > $1 AND ($2::text IS NULL OR agency = $2)
               AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)
               AND ($5::bigint[] IS NULL OR EXISTS (SELECT 1 FROM audit_disclosure d WHERE d.seq = e.seq AND d.version_id = ANY($5)))
             ORDER BY seq LIMIT $6",
        )
        .bind(q.after)
        .bind(&q.agency)
        .bind(q.since)
        .bind(q.until)
        .bind(&q.disclosed)
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        Ok(sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_optional(&self.pool).await?)
    }

    async fn parcels_taken(&self, agency: &str, since: DateTime<Utc>) -> Result<u64> {
        let n: Option<i64> =
            sqlx::query_scalar("SELECT sum(parcels)::bigint FROM audit_entry WHERE agency = $1 AND at >= $2")
                .bind(agency)
                .bind(since)
                .fetch_one(&self.pool)
                .await?;
        Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
    }
}
