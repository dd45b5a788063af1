//! Read replicas: the streaming standbys a server reads parcels, history and the change feed
//! from, and which of them (or the primary) reads go to now. A standby that stops answering is
//! left for another that has replayed at least as far as anything already read, or for the
//! primary when none has; reads go back to a standby once one answers and has caught up. So an
//! answer is never older than one already given, whichever database gives it.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::PgPool;

use crate::database_url::redact;
use crate::{Result, StoreError};

/// The change feed's head, read where the pool reads.
pub(super) const HEAD: &str = "SELECT coalesce(max(seq), 0) FROM parcel_change";

/// How long a standby may take to say how far it has replayed before it counts as not answering.
const PATIENCE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(super) struct Replicas {
    /// Each standby's URL (password hidden) and pool.
    standbys: Vec<(String, PgPool)>,
    /// The standby reads go to (an index of `standbys`), or `standbys.len()`: the primary.
    current: AtomicUsize,
    /// The highest change-feed position read so far, from whichever database.
    seen: AtomicI64,
    /// Held while one caller chooses: the requests that met a failed standby at once wait for
    /// one choice, not each ask every standby.
    choosing: tokio::sync::Mutex<()>,
}

impl Replicas {
    /// Checks each standby (a copy of `primary`'s cluster and database, having replayed its
    /// schema: waited for up to 30 s, as after a migration the primary just ran).
    pub(super) async fn connect(primary: &PgPool, urls: &[&str], schema: i64) -> Result<Replicas> {
        let mut standbys = Vec::new();
        for url in urls {
            let (read, _) = super::pool_of(url).await?;
            let replica = |reason: String| StoreError::Replica { url: redact(url), reason };
            let identity = "SELECT system_identifier::text || '/' || current_database() FROM pg_control_system()";
            let (ours, theirs): (String, String) = (
                sqlx::query_scalar(identity).fetch_one(primary).await?,
                sqlx::query_scalar(identity).fetch_one(&read).await?,
            );
            if ours != theirs {
                return Err(replica(format!(
                    "it is not a copy of the primary's database (cluster/database {theirs}, the primary's {ours}): make it with pg_basebackup -R from the primary"
                )));
            }
            let started = std::time::Instant::now();
            loop {
                let has: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                    .fetch_one(&read)
                    .await?;
                if has == Some(schema) {
                    break;
                }
                if started.elapsed() > Duration::from_secs(30) {
                    return Err(replica(format!(
                        "its schema is at migration {}, the primary's at {schema}, after 30 s: is it replaying?",
                        has.unwrap_or(0)
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            standbys.push((redact(url), read));
        }
        Ok(Replicas {
            standbys,
            current: AtomicUsize::new(0),
            seen: AtomicI64::new(0),
            choosing: tokio::sync::Mutex::new(()),
        })
    }

    /// Where reads go now.
    pub(super) fn pool<'a>(&'a self, primary: &'a PgPool) -> &'a PgPool {
        self.standbys.get(self.current.load(Ordering::Acquire)).map_or(primary, |(_, pool)| pool)
    }

    /// Notes a change-feed position read: no database behind it is read from again.
    pub(super) fn saw(&self, position: i64) {
        self.seen.fetch_max(position, Ordering::AcqRel);
    }

    /// What reads go to, for `/health`: `standby N of M`, or `primary` while no standby will do.
    pub(super) fn reading_from(&self) -> String {
        match self.current.load(Ordering::Acquire) {
            i if i < self.standbys.len() => format!("standby {} of {}", i + 1, self.standbys.len()),
            _ => "primary".to_owned(),
        }
    }

    /// Asks how far each standby has replayed and moves reads: away from one that does not
    /// answer, to the standby furthest ahead of those that answer and have replayed what was
    /// already read (the primary if none); back from the primary as soon as one will do.
    pub(super) async fn choose(&self) {
        let _one = self.choosing.lock().await;
        let current = self.current.load(Ordering::Acquire);
        let seen = self.seen.load(Ordering::Acquire);
        let head = |pool: &PgPool| {
            let pool = pool.clone();
            async move { tokio::time::timeout(PATIENCE, sqlx::query_scalar::<_, i64>(HEAD).fetch_one(&pool)).await }
        };
        if let Some((_, pool)) = self.standbys.get(current)
            && let Ok(Ok(_)) = head(pool).await
        {
            return;
        }
        let mut best: Option<(usize, i64)> = None;
        // The one that just did not answer is not asked again.
        for (i, (_, pool)) in self.standbys.iter().enumerate().filter(|(i, _)| *i != current) {
            if let Ok(Ok(replayed)) = head(pool).await
                && replayed >= seen
                && best.is_none_or(|(_, b)| replayed > b)
            {
                best = Some((i, replayed));
            }
        }
        let next = best.map_or(self.standbys.len(), |(i, _)| i);
        if next != current {
            let name = |i: usize| self.standbys.get(i).map_or("the primary", |(url, _)| url.as_str());
            tracing::warn!(from = name(current), to = name(next), "reads move to another database");
            self.current.store(next, Ordering::Release);
        }
    }
}
