//! [`AccessStore`] on PostGIS.

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use landdb_access::audit::{Chain, GENESIS};
use landdb_access::audit_block::BlockColumns;
use landdb_access::limits::{Leased, QuotaLease};
use landdb_access::{Agency, AuditEntry, AuditEvent, Broken, FollowedScope, KeyRecord, Verified};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use crate::access::{
    AccessStore, AuditQuery, dead_letter_doc, dead_letter_from, policy_from, read_scope_doc, role_from, scope_doc,
    subscription_doc, subscription_from,
};
use crate::{Result, StoreError};
use landdb_access::webhook::{DeadLetter, Subscription};

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
        let (Some(first), Some(last)) = (events.first(), events.last()) else { return Ok(()) };
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(AUDIT_LOCK).execute(&mut *tx).await?;
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_optional(&mut *tx).await?;
        let (mut seq, mut prev) = head.unwrap_or((0, GENESIS.to_owned()));
        // One row for the batch (see migrations/postgres/0005_audit_blocks.sql).
        let first_seq = seq + 1;
        let mut lines =
            std::mem::take(&mut *self.audit_lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        lines.clear();
        let mut agencies: Vec<&str> = Vec::new();
        // The block's index of who received what: the communes of what its entries disclosed
        // (see migrations/postgres/0009_audit_by_commune.sql); `disclosed` stays empty.
        let mut communes: Vec<i32> = Vec::new();
        let (mut min_at, mut max_at) = (first.at, last.at);
        for e in events {
            seq += 1;
            prev = landdb_access::audit::write_line(seq, e, &prev, &mut lines);
            if !agencies.contains(&&*e.agency) {
                agencies.push(&e.agency);
            }
            communes.extend(e.communes.iter().map(|&c| i32::try_from(c).unwrap_or(i32::MAX)));
            (min_at, max_at) = (min_at.min(e.at), max_at.max(e.at));
        }
        lines.pop(); // the last line's newline
        communes.sort_unstable();
        communes.dedup();
        let entries = std::str::from_utf8(&lines).map_err(|e| StoreError::Corrupt(format!("an audit line: {e}")))?;
        sqlx::query(
            "INSERT INTO audit_block (last_seq, first_seq, min_at, max_at, agencies, disclosed, communes, entries)
             VALUES ($1, $2, $3, $4, $5, '{}', $6, $7)",
        )
        .bind(seq)
        .bind(first_seq)
        .bind(min_at)
        .bind(max_at)
        .bind(&agencies)
        .bind(&communes)
        .bind(entries)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash",
        )
        .bind(seq)
        .bind(&prev)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // Kept for the next block, unless a burst made it large.
        if lines.capacity() <= KEPT_AUDIT_LINES {
            *self.audit_lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = lines;
        }
        Ok(())
    }

    async fn audit_entries(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        // The blocks that may hold matching entries, in order; their entries are then read and
        // picked until the page is full. A question about versions reads the blocks of older
        // forms that list one of them and the newer blocks of their communes (every block that
        // lists no version, when the communes are not known).
        let versions = q.disclosed.as_ref().or(q.received.as_ref());
        let communes: Option<Vec<i32>> =
            q.communes.as_ref().map(|cs| cs.iter().map(|&c| i32::try_from(c).unwrap_or(i32::MAX)).collect());
        let mut blocks = sqlx::query(
            "SELECT entries FROM audit_block
             WHERE last_seq > $1 AND ($2::text IS NULL OR $2 = ANY (agencies))
               AND ($3::timestamptz IS NULL OR max_at >= $3) AND ($4::timestamptz IS NULL OR min_at < $4)
               AND ($5::bigint[] IS NULL OR disclosed && $5
                    OR ($6::integer[] IS NULL AND disclosed = '{}') OR communes && $6)
             ORDER BY last_seq",
        )
        .bind(q.after)
        .bind(&q.agency)
        .bind(q.since)
        .bind(q.until)
        .bind(versions)
        .bind(&communes)
        .fetch(&self.pool);
        let mut page = Vec::new();
        while let Some(block) = blocks.try_next().await? {
            for entry in block_entries(&block)? {
                if q.matches(&entry) {
                    page.push(entry);
                    if i64::try_from(page.len()).unwrap_or(i64::MAX) >= q.limit {
                        return Ok(page);
                    }
                }
            }
        }
        Ok(page)
    }

    async fn verify_audit(
        &self,
        on_entry: &mut (dyn FnMut(&AuditEntry) + Send),
    ) -> Result<std::result::Result<Verified, Broken>> {
        // One snapshot for the head and every block: a batch committed meanwhile is either
        // wholly in it (with its head) or not at all.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_optional(&mut *tx).await?;
        let mut chain = Chain::default();
        // Every block of the table, whatever the head says: rows added after it are found.
        let mut blocks = sqlx::query(
            "SELECT last_seq, first_seq, min_at, max_at, agencies, disclosed, communes, entries FROM audit_block ORDER BY last_seq",
        )
        .fetch(&mut *tx);
        while let Some(block) = blocks.try_next().await? {
            let last_seq: i64 = block.try_get("last_seq")?;
            let entries = match block_entries(&block) {
                Ok(entries) => entries,
                Err(e) => {
                    let why = format!("audit_block {last_seq}: column entries holds a line that does not read ({e})");
                    return Ok(Err(Broken { seq: chain.last().0 + 1, why }));
                }
            };
            for entry in &entries {
                if let Err(broken) = chain.follow(entry) {
                    return Ok(Err(broken));
                }
                on_entry(entry);
            }
            let stored = BlockColumns {
                first_seq: block.try_get("first_seq")?,
                last_seq,
                min_at: block.try_get("min_at")?,
                max_at: block.try_get("max_at")?,
                agencies: block.try_get::<Vec<String>, _>("agencies")?.into_iter().collect(),
                disclosed: block.try_get::<Vec<i64>, _>("disclosed")?.into_iter().collect(),
                // A negative number is no commune: kept as one that no entry names, so it is found.
                communes: block
                    .try_get::<Vec<i32>, _>("communes")?
                    .into_iter()
                    .map(|c| u32::try_from(c).unwrap_or(u32::MAX))
                    .collect(),
            };
            if let Err(broken) = stored.check(&entries) {
                return Ok(Err(broken));
            }
        }
        Ok(chain.end(head))
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        Ok(sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_optional(&self.pool).await?)
    }

    async fn parcels_taken(&self, agency: &str, since: DateTime<Utc>) -> Result<u64> {
        let q = AuditQuery { agency: Some(agency.to_owned()), since: Some(since), ..AuditQuery::default() };
        let mut blocks = sqlx::query("SELECT entries FROM audit_block WHERE max_at >= $2 AND $1 = ANY (agencies)")
            .bind(agency)
            .bind(since)
            .fetch(&self.pool);
        let mut taken = 0;
        while let Some(block) = blocks.try_next().await? {
            taken += block_entries(&block)?.iter().filter(|e| q.matches(e)).map(|e| e.event.parcels).sum::<u64>();
        }
        Ok(taken)
    }

    async fn lease_quota(&self, lease: &QuotaLease) -> Result<Leased> {
        let count = |sql| sqlx::query_scalar::<_, i64>(sql).bind(&lease.agency).bind(lease.day);
        if count("SELECT count(*) FROM quota_day WHERE agency = $1 AND day = $2").fetch_one(&self.pool).await? == 0 {
            let seed = self.parcels_taken(&lease.agency, lease.since).await?;
            sqlx::query("INSERT INTO quota_day (agency, day, taken) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(&lease.agency)
                .bind(lease.day)
                .bind(i64::try_from(seed).unwrap_or(i64::MAX))
                .execute(&self.pool)
                .await?;
        }
        let mut tx = self.pool.begin().await?;
        let taken =
            count("SELECT taken FROM quota_day WHERE agency = $1 AND day = $2 FOR UPDATE").fetch_one(&mut *tx).await?;
        let leased = lease.grant(u64::try_from(taken).unwrap_or(0));
        if leased.granted > 0 {
            sqlx::query("UPDATE quota_day SET taken = taken + $3 WHERE agency = $1 AND day = $2")
                .bind(&lease.agency)
                .bind(lease.day)
                .bind(i64::try_from(leased.granted).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(leased)
    }

    async fn return_quota(&self, agency: &str, day: NaiveDate, features: u64) -> Result<()> {
        sqlx::query("UPDATE quota_day SET taken = greatest(taken - $3, 0) WHERE agency = $1 AND day = $2")
            .bind(agency)
            .bind(day)
            .bind(i64::try_from(features).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn secret(&self, purpose: &str, fresh: [u8; 32]) -> Result<[u8; 32]> {
        // The first server to ask makes it; every later one (and a racing one) reads it.
        sqlx::query("INSERT INTO server_secret (purpose, secret) VALUES ($1, $2) ON CONFLICT (purpose) DO NOTHING")
            .bind(purpose)
            .bind(fresh.as_slice())
            .execute(&self.pool)
            .await?;
        let secret: Vec<u8> = sqlx::query_scalar("SELECT secret FROM server_secret WHERE purpose = $1")
            .bind(purpose)
            .fetch_one(&self.pool)
            .await?;
        secret.try_into().map_err(|_| StoreError::Corrupt(format!("the server secret {purpose} is not 32 bytes")))
    }

    async fn heartbeat(&self, id: &str) -> Result<u64> {
        // The database's clock, one for every process.
        sqlx::query("INSERT INTO server_process (id, seen_at) VALUES ($1, now()) ON CONFLICT (id) DO UPDATE SET seen_at = now()")
            .bind(id)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM server_process WHERE seen_at < now() - interval '10 seconds'")
            .execute(&self.pool)
            .await?;
        let live: i64 =
            sqlx::query_scalar("SELECT count(*) FROM server_process WHERE seen_at > now() - interval '3 seconds'")
                .fetch_one(&self.pool)
                .await?;
        Ok(live.max(1).cast_unsigned())
    }

    async fn leave(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM server_process WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    async fn remember_scope(&self, agency: &str, scope: &FollowedScope) -> Result<()> {
        sqlx::query(
            "INSERT INTO feed_scope (agency, fingerprint, doc) VALUES ($1, $2, $3::jsonb)
             ON CONFLICT (agency, fingerprint) DO NOTHING",
        )
        .bind(agency)
        .bind(scope.fingerprint().cast_signed())
        .bind(scope_doc(scope)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remembered_scope(&self, agency: &str, fingerprint: u64) -> Result<Option<FollowedScope>> {
        let doc: Option<String> =
            sqlx::query_scalar("SELECT doc::text FROM feed_scope WHERE agency = $1 AND fingerprint = $2")
                .bind(agency)
                .bind(fingerprint.cast_signed())
                .fetch_optional(&self.pool)
                .await?;
        doc.map(|d| read_scope_doc(&d)).transpose()
    }

    async fn put_subscription(&self, sub: &Subscription) -> Result<()> {
        sqlx::query(
            "INSERT INTO subscription (id, agency, doc) VALUES ($1, $2, $3::jsonb)
             ON CONFLICT (id) DO UPDATE SET agency = EXCLUDED.agency, doc = EXCLUDED.doc",
        )
        .bind(&sub.id)
        .bind(&sub.agency)
        .bind(subscription_doc(sub)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn update_subscription(&self, sub: &Subscription) -> Result<bool> {
        let n = sqlx::query("UPDATE subscription SET doc = $2::jsonb WHERE id = $1")
            .bind(&sub.id)
            .bind(subscription_doc(sub)?)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected() > 0)
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>> {
        let docs: Vec<String> =
            sqlx::query_scalar("SELECT doc::text FROM subscription ORDER BY id").fetch_all(&self.pool).await?;
        docs.iter().map(|d| subscription_from(d)).collect()
    }

    async fn delete_subscription(&self, id: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM subscription WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(n.rows_affected() > 0)
    }

    async fn lease_subscription(
        &self,
        id: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE subscription SET leased_by = $2, leased_until = $4
             WHERE id = $1 AND (leased_by IS NULL OR leased_by = $2 OR leased_until < $3)",
        )
        .bind(id)
        .bind(holder)
        .bind(now)
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(n.rows_affected() > 0)
    }

    async fn add_dead_letter(&self, d: &DeadLetter) -> Result<i64> {
        Ok(sqlx::query_scalar("INSERT INTO dead_letter (subscription, doc) VALUES ($1, $2::jsonb) RETURNING id")
            .bind(&d.subscription)
            .bind(dead_letter_doc(d)?)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn dead_letters(&self, subscription: &str) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query(
            "SELECT id, doc::text AS doc, replayed_at FROM dead_letter WHERE subscription = $1 ORDER BY id",
        )
        .bind(subscription)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| dead_letter_from(r.try_get("id")?, r.try_get("doc")?, r.try_get("replayed_at")?)).collect()
    }

    async fn mark_replayed(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE dead_letter SET replayed_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The entries of an audit block, in order.
fn block_entries(block: &PgRow) -> Result<Vec<AuditEntry>> {
    let text: &str = block.try_get("entries")?;
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| landdb_access::audit::read_line(l).map_err(StoreError::Corrupt))
        .collect()
}

/// The largest line buffer the store keeps between audit blocks.
const KEPT_AUDIT_LINES: usize = 16 << 20;
