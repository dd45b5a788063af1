//! The delivery worker: in every server, a task that takes the lease of each active subscription
//! in turn (one server delivers a subscription at a time) and delivers the next page of its
//! agency's change feed, read as the subscribing key would read it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use landdb_access::webhook::{DeadLetter, PAUSE_AFTER, State, Subscription, signature};
use landdb_store::AccessStore;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::feed::{Token, place, read_page};
use crate::ogc::ApiError;

/// How often the worker looks at the subscriptions.
const ROUND: Duration = Duration::from_millis(300);
/// How long a lease lasts (a server that dies lets another take over after it).
const LEASE: Duration = Duration::from_secs(30);
/// Events a delivery.
const LIMIT: usize = 500;
/// How long a receiver may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until the process ends.
pub async fn run(app: Arc<AppState>) {
    let mut holder = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut holder);
    let holder = hex::encode(holder);
    loop {
        tokio::time::sleep(ROUND).await;
        let Ok(store) = app.sources.webhook_store() else { continue };
        let subscriptions = match store.subscriptions().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the webhook subscriptions");
                continue;
            }
        };
        for s in subscriptions.into_iter().filter(|s| s.state == State::Active) {
            let now = Utc::now();
            let until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
            if !matches!(store.lease_subscription(&s.id, &holder, now, until).await, Ok(true)) {
                continue;
            }
            let id = s.id.clone();
            if let Err(e) = deliver_next(&app, s).await {
                tracing::warn!(subscription = %id, error = %e.description, "a webhook delivery failed");
            }
        }
    }
}

/// Delivers the subscription's next page, if it has one.
async fn deliver_next(app: &Arc<AppState>, mut s: Subscription) -> Result<(), ApiError> {
    // A key that no longer works, a policy out of force or an agency at its limits: not now.
    let Some(access) = app.gate.delivery_access(&s.key_id, Utc::now()) else { return Ok(()) };
    let key = app.sources.feed_key().await?;
    // A token that no longer opens (the key of the database changed) starts again too.
    let opened = s.token.as_deref().and_then(|t| key.open(&s.agency, t).ok());
    let scope = app.sources.follow_scope(&access).await?;
    let (phase, reset) = place(app, &access, scope, opened).await?;
    // A filter the agency's policy no longer allows (it asks about personal data the agency no
    // longer sees) stops the deliveries, saying why, until the agency replaces the subscription.
    let filter = match super::compile_filter(s.filter.as_deref(), &access) {
        Ok(f) => f,
        Err(e) => {
            s.state = State::Paused;
            s.note = Some(format!("paused: {}", e.description));
            app.sources.webhook_store()?.update_subscription(&s).await.map_err(|e| ApiError::store(&e))?;
            return Ok(());
        }
    };
    // Only the parcels of the subscription's communes, land-use codes and filter go out (and
    // only they are taken from the quota and put on record).
    let wants = |p: &landdb_engine::Parcel<'_>| {
        let codes = p.land_use();
        let uses: Vec<&str> = codes.iter().map(|u| u.as_str()).collect();
        s.wants(p.commune().as_str(), &uses) && filter.as_ref().is_none_or(|f| f.matches(p, None))
    };
    let page = read_page(app, &access, phase, LIMIT, Instant::now(), Some(&wants)).await?;
    let next = key.seal(&s.agency, Token { phase: page.next, scope });
    if page.events.is_empty() && !reset && !page.complete {
        if page.next != phase {
            s.token = Some(next);
            app.sources.webhook_store()?.update_subscription(&s).await.map_err(|e| ApiError::store(&e))?;
        }
        return Ok(());
    }
    // The same page from the same place has the same id, whichever server delivers it.
    let place = s.token.clone().unwrap_or_default();
    let delivery = hex::encode(&Sha256::digest(format!("{}:{place}", s.id))[..16]);
    let mut body = format!(
        "{{\"subscription\":\"{}\",\"delivery\":\"{delivery}\",\"reset\":{reset},\"snapshotComplete\":{},\"changes\":[",
        s.id, page.complete
    )
    .into_bytes();
    body.extend_from_slice(page.array());
    body.extend_from_slice(b"]}");
    let body = String::from_utf8(body).map_err(|e| ApiError::internal(&e))?;
    // Sent is disclosed, whatever the receiver answers.
    let uri: axum::http::Uri = format!("/subscriptions/{}", s.id).parse().unwrap_or_default();
    app.gate.audit.record_streamed(&access, &uri, page.disclosure);
    let mut outcome = post(&s, &delivery, body.as_bytes()).await;
    let mut attempts = 1;
    for &pause in &app.webhooks.backoff {
        if outcome.is_ok() {
            break;
        }
        tokio::time::sleep(pause).await;
        outcome = post(&s, &delivery, body.as_bytes()).await;
        attempts += 1;
    }
    let store = app.sources.webhook_store()?;
    match outcome {
        Ok(()) => s.failures = 0,
        Err(error) => {
            let letter = DeadLetter {
                id: 0,
                subscription: s.id.clone(),
                delivery,
                body,
                attempts,
                error,
                failed_at: Utc::now(),
                replayed_at: None,
            };
            store.add_dead_letter(&letter).await.map_err(|e| ApiError::store(&e))?;
            s.failures += 1;
            if s.failures >= PAUSE_AFTER {
                s.state = State::Paused;
            }
        }
    }
    s.token = Some(next);
    store.update_subscription(&s).await.map_err(|e| ApiError::store(&e))?;
    Ok(())
}

/// The client every delivery goes out through (its connections kept between deliveries).
fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::Client, String>> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            // No redirect is followed: an allowed host could otherwise send the server anywhere.
            reqwest::Client::builder()
                .timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// One try of a delivery: POSTed, signed; a 2xx answer is delivered.
pub async fn post(s: &Subscription, delivery: &str, body: &[u8]) -> Result<(), String> {
    let timestamp = Utc::now().timestamp();
    let answer = client()?
        .post(&s.callback)
        .header("content-type", "application/json")
        .header("x-landdb-delivery", delivery)
        .header("x-landdb-timestamp", timestamp.to_string())
        .header("x-landdb-signature", signature(&s.secret, timestamp, body))
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| format!("{}: {e}", s.callback))?;
    if answer.status().is_success() { Ok(()) } else { Err(format!("{} answered {}", s.callback, answer.status())) }
}
