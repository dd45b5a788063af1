//! Whether this server can answer truthfully, watched once a second: the store reachable, and the
//! engine not behind the store's change feed for longer than a threshold. `/ready` is 503 with
//! the reason while either fails (a load balancer sends requests elsewhere); `/health` reports
//! the store, how long the engine has been behind, and the upload jobs, and stays 200 while the
//! process lives.
//!
//! Both are open routes: they say nothing of what the store holds (no feed positions, no parcel
//! counts; those are for operators, at `/metrics`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::AppState;

/// What the watcher saw last.
#[derive(Debug)]
pub struct Health {
    /// How long the engine may stay behind the feed's head before the server is not ready.
    pub max_lag: Duration,
    observed: Mutex<Observed>,
}

#[derive(Debug, Default)]
struct Observed {
    /// Why the store did not answer, since when; `None` while it answers.
    unreachable: Option<(Instant, String)>,
    /// Since when the engine has been behind the head the store reported.
    behind_since: Option<Instant>,
    /// Changes the read replica had still to replay, when reads go to one (for `/metrics`).
    replica_lag: Option<i64>,
    /// Since when the replica has been behind the primary.
    replica_behind_since: Option<Instant>,
    /// What reads go to with replicas: `standby N of M`, or `primary` while none will do.
    reading_from: Option<String>,
}

/// How often the watcher asks the store, and how long it waits for the answer.
const EVERY: Duration = Duration::from_secs(1);
const PATIENCE: Duration = Duration::from_secs(3);

impl Health {
    pub fn new(max_lag: Duration) -> Self {
        Health { max_lag, observed: Mutex::new(Observed::default()) }
    }

    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long the engine has been behind the store's feed (zero when current).
    pub fn feed_lag(&self) -> Duration {
        self.observed().behind_since.map_or(Duration::ZERO, |since| since.elapsed())
    }

    /// Changes the read replica had still to replay when last asked (`None` without one).
    pub fn replica_lag(&self) -> Option<i64> {
        self.observed().replica_lag
    }

    /// Why the server is not ready, if it is not.
    pub fn not_ready(&self) -> Option<String> {
        if let Some((since, _)) = &self.observed().unreachable {
            return Some(format!("the store has been unreachable for {} s", since.elapsed().as_secs()));
        }
        let lag = self.feed_lag();
        (lag > self.max_lag).then(|| {
            format!(
                "the engine has been behind the store's change feed for {} s (more than {} s)",
                lag.as_secs(),
                self.max_lag.as_secs()
            )
        })
    }

    /// `/health`'s document.
    pub fn document(&self, app: &AppState) -> Value {
        let (store, lag, replica) = {
            let o = self.observed();
            let store = match &o.unreachable {
                None => json!({ "kind": app.sources.store_kind(), "reachable": true }),
                Some((since, reason)) => json!({
                    "kind": app.sources.store_kind(),
                    "reachable": false,
                    "unreachable_seconds": since.elapsed().as_secs(),
                    "reason": reason,
                }),
            };
            let replica = o.reading_from.clone().map(|from| {
                (from, o.replica_lag.map(|_| o.replica_behind_since.map_or(0.0, |s| s.elapsed().as_secs_f64())))
            });
            (store, o.behind_since.map_or(0.0, |s| s.elapsed().as_secs_f64()), replica)
        };
        let (queued, running) = app.jobs.in_progress();
        let mut doc = json!({
            "status": if self.not_ready().is_some() { "degraded" } else { "ok" },
            "store": store,
            "feed": { "lag_seconds": (lag * 10.0).round() / 10.0, "max_lag_seconds": self.max_lag.as_secs() },
            "jobs": { "queued": queued, "running": running, "workers": app.jobs.limits().workers },
        });
        let audit = &app.gate.audit.state;
        doc["audit"] = json!({
            "primary": if audit.away() { "away" } else { "reachable" },
            "spool": if audit.spooled() > 0 { "waiting" } else { "empty" },
            "recording": !audit.unrecordable(),
        });
        if let Some((from, seconds)) = replica {
            // Reads come from a standby: which, and how long it has been behind the primary (in
            // seconds, not changes: an open route tells no volumes; `/metrics` has the count).
            doc["replica"] = json!({
                "reading_from": from,
                "lag_seconds": seconds.map(|s| (s * 10.0).round() / 10.0),
            });
        }
        doc
    }

    fn saw(&self, result: Result<bool, String>) {
        let mut o = self.observed();
        match result {
            Ok(behind) => {
                if o.unreachable.take().is_some() {
                    tracing::info!("the store is reachable again");
                }
                o.behind_since = match (behind, o.behind_since) {
                    (false, _) => None,
                    (true, Some(since)) => Some(since),
                    (true, None) => Some(Instant::now()),
                };
            }
            Err(reason) => {
                if o.unreachable.is_none() {
                    tracing::warn!(%reason, "the store is unreachable");
                    o.unreachable = Some((Instant::now(), reason));
                }
            }
        }
    }
}

/// Asks the store for its feed's head once a second and compares it with the engine's position.
/// Runs until the process ends.
pub async fn watch(app: Arc<AppState>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // First, a replica that does not answer is left: what follows reads from its successor.
        let reading_from = app.sources.choose_replica().await;
        app.health.observed().reading_from = reading_from;
        let seen = match tokio::time::timeout(PATIENCE, app.sources.feed_positions()).await {
            Ok(Ok((head, engine))) => Ok(engine < head),
            Ok(Err(e)) if e.is_unavailable() => Err("the database does not answer".to_owned()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the health check's query failed");
                Err("the database answers with errors".to_owned())
            }
            Err(_) => Err(format!("the database did not answer within {} s", PATIENCE.as_secs())),
        };
        app.sources.note_store_reachable(seen.is_ok());
        app.health.saw(seen);
        if let Ok(Ok(lag)) = tokio::time::timeout(PATIENCE, app.sources.replica_lag()).await {
            let mut o = app.health.observed();
            o.replica_behind_since = match (lag, o.replica_behind_since) {
                (Some(n), since) if n > 0 => since.or_else(|| Some(Instant::now())),
                _ => None,
            };
            o.replica_lag = lag;
        }
    }
}
