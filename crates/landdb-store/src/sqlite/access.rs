//! [`AccessStore`] on the embedded store (as the PostGIS one; timestamps as RFC 3339 text).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use landdb_access::audit::{Chain, Form, GENESIS};
use landdb_access::limits::{Leased, QuotaLease};
use landdb_access::webhook::{DeadLetter, Subscription};
use landdb_access::{Agency, AuditEntry, AuditEvent, Broken, FollowedScope, KeyRecord, Verified};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, parse_timestamp, timestamp};
use crate::Result;
use crate::access::{
    AccessStore, AuditQuery, communes_from, communes_text, personal_from, personal_text, policy_from, role_from,
    versions_text,
};

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
    // No list of versions: an entry written before they were listed (migration 4); no list of
    // communes: before those were (migration 6).
    let (versions, communes, form) =
        match (r.try_get::<Option<&str>, _>("versions")?, r.try_get::<Option<&str>, _>("communes")?) {
            (Some(v), Some(c)) => (personal_from(v)?, communes_from(c)?, Form::ByCommune),
            (Some(v), None) => (personal_from(v)?, Vec::new(), Form::EveryVersion),
            (None, _) => (Vec::new(), Vec::new(), Form::PersonalOnly),
        };
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
            versions,
            communes,
        },
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
        form,
    })
}

impl AccessStore for SqliteStore {
    async fn put_agency(&self, a: &Agency) -> Result<()> {
        let policy = serde_json::to_string(&a.policy).map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        let mut tx = super::begin_writing(&self.pool).await?;
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
        let mut tx = super::begin_writing(&self.pool).await?;
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
        let mut tx = super::begin_writing(&self.pool).await?;
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
        let mut tx = super::begin_writing(&self.pool).await?;
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_optional(&mut *tx).await?;
        let (mut seq, mut prev) = head.unwrap_or((0, GENESIS.to_owned()));
        for event in events {
            seq += 1;
            let entry = event.clone().chain(seq, &prev);
            let e = &entry.event;
            sqlx::query(
                "INSERT INTO audit_entry (seq, at, agency, key_id, method, endpoint, params, purpose, status, parcels, personal, versions, communes, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
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
            .bind(versions_text(&entry))
            .bind(communes_text(&entry))
            .bind(&entry.prev_hash)
            .bind(&entry.hash)
            .execute(&mut *tx)
            .await?;
            // The index of who received what: every version the entry disclosed, once.
            let received: std::collections::BTreeSet<i64> = e.received().collect();
            for v in received {
                sqlx::query("INSERT INTO audit_disclosure (version_id, seq) VALUES (?1, ?2)")
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
        let list =
            |vs: &Option<Vec<i64>>| vs.as_ref().map(|d| serde_json::to_string(d).unwrap_or_else(|_| "[]".to_owned()));
        // Versions asked for are found through the disclosure index (every version received);
        // personal data is then told apart by the entry's own list.
        let rows = sqlx::query(
            "SELECT * FROM audit_entry e
             WHERE seq > ?1 AND (?2 IS NULL OR agency = ?2)
               AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR at < ?4)
               AND (?5 IS NULL OR (seq IN (SELECT d.seq FROM audit_disclosure d WHERE d.version_id IN (SELECT value FROM json_each(?5)))
                    AND EXISTS (SELECT 1 FROM json_each(e.personal) p WHERE p.value IN (SELECT value FROM json_each(?5)))))
               AND (?6 IS NULL OR seq IN (SELECT d.seq FROM audit_disclosure d WHERE d.version_id IN (SELECT value FROM json_each(?6))))
               AND (?8 IS NULL OR e.communes IS NULL
                    OR EXISTS (SELECT 1 FROM json_each(e.communes) c WHERE c.value IN (SELECT value FROM json_each(?8))))
             ORDER BY seq LIMIT ?7",
        )
        .bind(q.after)
        .bind(&q.agency)
        .bind(q.since.map(timestamp))
        .bind(q.until.map(timestamp))
        .bind(list(&q.disclosed))
        .bind(list(&q.received))
        .bind(q.limit)
        .bind(q.communes.as_ref().map(|c| serde_json::to_string(c).unwrap_or_else(|_| "[]".to_owned())))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn verify_audit(
        &self,
        on_entry: &mut (dyn FnMut(&AuditEntry) + Send),
    ) -> Result<std::result::Result<Verified, Broken>> {
        const PAGE: i64 = 10_000;
        // One read transaction: one snapshot of the head, the entries and the index.
        let mut tx = self.pool.begin().await?;
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_optional(&mut *tx).await?;
        let mut chain = Chain::default();
        let mut after = i64::MIN;
        loop {
            let rows = sqlx::query("SELECT * FROM audit_entry WHERE seq > ?1 ORDER BY seq LIMIT ?2")
                .bind(after)
                .bind(PAGE)
                .fetch_all(&mut *tx)
                .await?;
            // The index rows of this page's entries (the last page: every row left, so that
            // rows naming no entry are found too).
            let end = match rows.last() {
                Some(r) if i64::try_from(rows.len()).unwrap_or(i64::MAX) == PAGE => r.try_get::<i64, _>("seq")?,
                _ => i64::MAX,
            };
            let index: Vec<(i64, i64)> =
                sqlx::query_as("SELECT seq, version_id FROM audit_disclosure WHERE seq > ?1 AND seq <= ?2")
                    .bind(after)
                    .bind(end)
                    .fetch_all(&mut *tx)
                    .await?;
            let mut implied = std::collections::BTreeSet::new();
            for row in &rows {
                let entry = match entry_from_row(row) {
                    Ok(entry) => entry,
                    Err(e) => {
                        let seq = row.try_get::<i64, _>("seq").unwrap_or(chain.last().0 + 1);
                        return Ok(Err(Broken { seq, why: format!("its row does not read ({e})") }));
                    }
                };
                if let Err(broken) = chain.follow(&entry) {
                    return Ok(Err(broken));
                }
                on_entry(&entry);
                implied.extend(entry.event.received().map(|v| (entry.seq, v)));
            }
            let stored: std::collections::BTreeSet<(i64, i64)> = index.into_iter().collect();
            if let Some(&(seq, version)) = implied.symmetric_difference(&stored).next() {
                let why = if stored.contains(&(seq, version)) {
                    format!("audit_disclosure lists version {version} for it, which it did not disclose")
                } else {
                    format!("audit_disclosure lacks version {version}, which it disclosed")
                };
                return Ok(Err(Broken { seq, why: format!("{why}: the index was edited outside landdb") }));
            }
            if end == i64::MAX {
                break;
            }
            after = end;
        }
        Ok(chain.end(head))
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

    async fn lease_quota(&self, lease: &QuotaLease) -> Result<Leased> {
        let day = lease.day.to_string();
        let counted: i64 = sqlx::query_scalar("SELECT count(*) FROM quota_day WHERE agency = ?1 AND day = ?2")
            .bind(&lease.agency)
            .bind(&day)
            .fetch_one(&self.pool)
            .await?;
        let seed = if counted == 0 { self.parcels_taken(&lease.agency, lease.since).await? } else { 0 };
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO quota_day (agency, day, taken) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")
            .bind(&lease.agency)
            .bind(&day)
            .bind(i64::try_from(seed).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        // The write above took the database's write lock: no other process moves the count
        // between this read and the update.
        let taken: i64 = sqlx::query_scalar("SELECT taken FROM quota_day WHERE agency = ?1 AND day = ?2")
            .bind(&lease.agency)
            .bind(&day)
            .fetch_one(&mut *tx)
            .await?;
        let leased = lease.grant(u64::try_from(taken).unwrap_or(0));
        sqlx::query("UPDATE quota_day SET taken = taken + ?3 WHERE agency = ?1 AND day = ?2")
            .bind(&lease.agency)
            .bind(&day)
            .bind(i64::try_from(leased.granted).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(leased)
    }

    async fn return_quota(&self, agency: &str, day: NaiveDate, features: u64) -> Result<()> {
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        sqlx::query("UPDATE quota_day SET taken = max(taken - ?3, 0) WHERE agency = ?1 AND day = ?2")
            .bind(agency)
            .bind(day.to_string())
            .bind(i64::try_from(features).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn secret(&self, purpose: &str, fresh: [u8; 32]) -> Result<[u8; 32]> {
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        sqlx::query("INSERT INTO server_secret (purpose, secret) VALUES (?, ?) ON CONFLICT (purpose) DO NOTHING")
            .bind(purpose)
            .bind(fresh.as_slice())
            .execute(&self.pool)
            .await?;
        let secret: Vec<u8> = sqlx::query_scalar("SELECT secret FROM server_secret WHERE purpose = ?")
            .bind(purpose)
            .fetch_one(&self.pool)
            .await?;
        secret
            .try_into()
            .map_err(|_| crate::StoreError::Corrupt(format!("the server secret {purpose} is not 32 bytes")))
    }

    async fn heartbeat(&self, id: &str) -> Result<u64> {
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        let now = "((julianday('now') - 2440587.5) * 86400.0)";
        sqlx::query(&format!(
            "INSERT INTO server_process (id, seen_at) VALUES (?, {now}) ON CONFLICT (id) DO UPDATE SET seen_at = {now}"
        ))
        .bind(id)
        .execute(&self.pool)
        .await?;
        sqlx::query(&format!("DELETE FROM server_process WHERE seen_at < {now} - 10")).execute(&self.pool).await?;
        let live: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM server_process WHERE seen_at > {now} - 3"))
            .fetch_one(&self.pool)
            .await?;
        Ok(live.max(1).cast_unsigned())
    }

    async fn leave(&self, id: &str) -> Result<()> {
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        sqlx::query("DELETE FROM server_process WHERE id = ?").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    async fn remember_scope(&self, agency: &str, scope: &FollowedScope) -> Result<()> {
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        sqlx::query("INSERT INTO feed_scope (agency, fingerprint, doc) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(agency)
            .bind(scope.fingerprint().cast_signed())
            .bind(crate::access::scope_doc(scope)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn remembered_scope(&self, agency: &str, fingerprint: u64) -> Result<Option<FollowedScope>> {
        let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM feed_scope WHERE agency = ? AND fingerprint = ?")
            .bind(agency)
            .bind(fingerprint.cast_signed())
            .fetch_optional(&self.pool)
            .await?;
        doc.map(|d| crate::access::read_scope_doc(&d)).transpose()
    }

    async fn put_subscription(&self, sub: &Subscription) -> Result<()> {
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        sqlx::query(
            "INSERT INTO subscription (id, agency, doc) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET agency = excluded.agency, doc = excluded.doc",
        )
        .bind(&sub.id)
        .bind(&sub.agency)
        .bind(crate::access::subscription_doc(sub)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn update_subscription(&self, sub: &Subscription) -> Result<bool> {
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        let n = sqlx::query("UPDATE subscription SET doc = ? WHERE id = ?")
            .bind(crate::access::subscription_doc(sub)?)
            .bind(&sub.id)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected() > 0)
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>> {
        let docs: Vec<String> =
            sqlx::query_scalar("SELECT doc FROM subscription ORDER BY id").fetch_all(&self.pool).await?;
        docs.iter().map(|d| crate::access::subscription_from(d)).collect()
    }

    async fn delete_subscription(&self, id: &str) -> Result<bool> {
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        let n = sqlx::query("DELETE FROM subscription WHERE id = ?").bind(id).execute(&self.pool).await?;
        Ok(n.rows_affected() > 0)
    }

    async fn lease_subscription(
        &self,
        id: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        let n = sqlx::query(
            "UPDATE subscription SET leased_by = ?2, leased_until = ?4
             WHERE id = ?1 AND (leased_by IS NULL OR leased_by = ?2 OR leased_until < ?3)",
        )
        .bind(id)
        .bind(holder)
        .bind(timestamp(now))
        .bind(timestamp(until))
        .execute(&self.pool)
        .await?;
        Ok(n.rows_affected() > 0)
    }

    async fn add_dead_letter(&self, d: &DeadLetter) -> Result<i64> {
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        let done = sqlx::query("INSERT INTO dead_letter (subscription, doc) VALUES (?, ?)")
            .bind(&d.subscription)
            .bind(crate::access::dead_letter_doc(d)?)
            .execute(&self.pool)
            .await?;
        Ok(done.last_insert_rowid())
    }

    async fn dead_letters(&self, subscription: &str) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query("SELECT id, doc, replayed_at FROM dead_letter WHERE subscription = ? ORDER BY id")
            .bind(subscription)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let replayed: Option<String> = r.try_get("replayed_at")?;
                let replayed = replayed.map(|t| parse_timestamp(&t)).transpose()?;
                crate::access::dead_letter_from(r.try_get("id")?, r.try_get("doc")?, replayed)
            })
            .collect()
    }

    async fn mark_replayed(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        let _writer = Arc::clone(&self.writer).lock_owned().await;
        sqlx::query("UPDATE dead_letter SET replayed_at = ? WHERE id = ?")
            .bind(timestamp(at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
