//! [`AccessStore`] on PostGIS.

use chrono::{DateTime, Utc};
use landdb_access::audit::GENESIS;
use landdb_access::{Agency, AuditEntry, AuditEvent, KeyRecord};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use crate::Result;
use crate::access::{AccessStore, AuditQuery, personal_from, personal_text, policy_from, role_from};

/// The advisory lock that serialises appends to the audit chain across processes.
const AUDIT_LOCK: i64 = 0x6c61_6e64_6462_0a01;

const BUMP: &str = "UPDATE access_generation SET generation = generation + 1 WHERE id = 1";

/// A batch of entries as columns, for one `INSERT … SELECT FROM UNNEST` (borrowed from the
/// events: nothing is copied but the hashes).
#[derive(Debug, Default)]
struct AuditColumns<'a> {
    seq: Vec<i64>,
    at: Vec<DateTime<Utc>>,
    agency: Vec<&'a str>,
    key_id: Vec<&'a str>,
    method: Vec<&'a str>,
    endpoint: Vec<&'a str>,
    params: Vec<&'a str>,
    purpose: Vec<&'a str>,
    status: Vec<i32>,
    parcels: Vec<i64>,
    personal: Vec<String>,
    prev_hash: Vec<String>,
    hash: Vec<String>,
    disclosed_version: Vec<i64>,
    disclosed_seq: Vec<i64>,
}

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
        let (mut seq, mut prev) = head.unwrap_or((0, GENESIS.to_owned()));
        // The whole batch in two statements (column arrays unnested): one round trip, not one
        // an entry, so the log keeps up with tens of thousands of requests a second.
        let mut c = AuditColumns::default();
        for e in events {
            seq += 1;
            let hash = landdb_access::audit::entry_hash(seq, e, &prev);
            c.seq.push(seq);
            c.at.push(e.at);
            c.agency.push(&e.agency);
            c.key_id.push(&e.key_id);
            c.method.push(&e.method);
            c.endpoint.push(&e.endpoint);
            c.params.push(&e.params);
            c.purpose.push(&e.purpose);
            c.status.push(i32::from(e.status));
            c.parcels.push(i64::try_from(e.parcels).unwrap_or(i64::MAX));
            c.personal.push(personal_text(e));
            for v in &e.personal {
                c.disclosed_version.push(*v);
                c.disclosed_seq.push(seq);
            }
            c.prev_hash.push(std::mem::replace(&mut prev, hash.clone()));
            c.hash.push(hash);
        }
        sqlx::query(
            "INSERT INTO audit_entry (seq, at, agency, key_id, method, endpoint, params, purpose, status, parcels, personal, prev_hash, hash)
             SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                                  $8::text[], $9::int[], $10::bigint[], $11::text[], $12::text[], $13::text[])",
        )
        .bind(&c.seq)
        .bind(&c.at)
        .bind(&c.agency)
        .bind(&c.key_id)
        .bind(&c.method)
        .bind(&c.endpoint)
        .bind(&c.params)
        .bind(&c.purpose)
        .bind(&c.status)
        .bind(&c.parcels)
        .bind(&c.personal)
        .bind(&c.prev_hash)
        .bind(&c.hash)
        .execute(&mut *tx)
        .await?;
        if !c.disclosed_version.is_empty() {
            sqlx::query(
                "INSERT INTO audit_disclosure (version_id, seq) SELECT * FROM UNNEST($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING",
            )
            .bind(&c.disclosed_version)
            .bind(&c.disclosed_seq)
            .execute(&mut *tx)
            .await?;
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
