//! Webhooks: an agency's change feed pushed to its callback. `POST /subscriptions` names the
//! callback (and optionally communes, land-use codes and a CQL2 filter); the answer shows the signing secret
//! once. A delivery worker in every server follows each subscription's feed as the subscribing
//! key would (the same page reader, release, quota and audit as `/collections/parcels/changes`),
//! and POSTs each page of events, signed (HMAC-SHA256 over the timestamp and the body), retried
//! with exponential backoff, at least once, with an idempotency id. A page that fails every try is
//! kept as a dead letter the agency can read and replay; after three in a row the subscription
//! pauses until it does. Callbacks go only to the hosts the operator allows
//! (`--webhook-hosts`), so a subscription cannot make the server call into its own network.

pub mod deliver;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use landdb_access::webhook::{self, State as SubscriptionState, Subscription};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::access::Access;
use crate::filter::{Filter, Language};
use crate::ogc::{ApiError, json_response};

/// Subscriptions an agency may hold at once (every server's worker looks at each of them).
pub const MAX_SUBSCRIPTIONS: usize = 10;

/// The webhook settings of a server.
#[derive(Debug, Clone)]
pub struct Webhooks {
    /// The hosts (`host` or `host:port`) callbacks may point at.
    pub allowed_hosts: Vec<String>,
    /// The pauses between the tries of a delivery (then it is a dead letter).
    pub backoff: Vec<std::time::Duration>,
}

impl Webhooks {
    /// Callbacks to `allowed_hosts`, tried five times over about eight seconds.
    pub fn new(allowed_hosts: Vec<String>) -> Webhooks {
        let backoff = [500, 1_000, 2_000, 4_000].map(std::time::Duration::from_millis).to_vec();
        Webhooks { allowed_hosts, backoff }
    }
}

/// What `POST /subscriptions` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    pub callback: String,
    #[serde(default)]
    pub communes: Vec<String>,
    #[serde(default)]
    pub land_use: Vec<String>,
    /// A CQL2 text filter over the fields the agency may query (`queryables`).
    #[serde(default)]
    pub filter: Option<String>,
}

/// The subscription's CQL2 filter, compiled for `access` (the subscribing key's view: a filter
/// may only ask about what the agency may query). A filter about validity is refused: every
/// delivered version is current when delivered.
pub(crate) fn compile_filter(raw: Option<&str>, access: &Access) -> Result<Option<Filter>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let filter = Filter::parse(raw, Language::Text, access)?;
    if filter.temporal {
        return Err(ApiError::bad_parameter(
            "filter: a subscription's filter cannot ask about validity (every delivered version is current)",
        ));
    }
    Ok(Some(filter))
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    json_response(status, "application/json", body.to_string())
}

/// A subscription as its agency sees it (never the secret, but when it is made).
fn shown(s: &Subscription, base: &str) -> serde_json::Value {
    json!({
        "id": s.id,
        "callback": s.callback,
        "communes": s.communes,
        "land_use": s.land_use,
        "filter": s.filter,
        "state": s.state,
        "note": s.note,
        "failures": s.failures,
        "created_at": s.created_at,
        "links": [
            { "href": format!("{base}/subscriptions/{}", s.id), "rel": "self", "type": "application/json" },
            { "href": format!("{base}/subscriptions/{}/dead-letters", s.id), "rel": "dead-letters", "type": "application/json" },
        ],
    })
}

/// Checks a callback: http or https, to an allowed host.
fn check_callback(raw: &str, webhooks: &Webhooks) -> Result<(), ApiError> {
    let url = url::Url::parse(raw).map_err(|e| ApiError::bad_parameter(format!("callback {raw:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ApiError::bad_parameter(format!("callback {raw}: give an http or https address")));
    }
    let host = url.host_str().unwrap_or_default();
    let with_port = format!("{host}:{}", url.port_or_known_default().unwrap_or(0));
    if !webhooks.allowed_hosts.iter().any(|a| *a == host || *a == with_port) {
        let allowed = if webhooks.allowed_hosts.is_empty() {
            "none (the operator allows hosts with --webhook-hosts)".to_owned()
        } else {
            webhooks.allowed_hosts.join(", ")
        };
        return Err(ApiError::bad_parameter(format!("callback {raw}: host {host} is not allowed; allowed: {allowed}")));
    }
    Ok(())
}

pub async fn create(
    State(app): State<Arc<AppState>>,
    access: Access,
    call: crate::routes::Call,
    Json(new): Json<NewSubscription>,
) -> Result<Response, ApiError> {
    check_callback(&new.callback, &app.webhooks)?;
    compile_filter(new.filter.as_deref(), &access)?;
    let store = app.sources.webhook_store()?;
    let held = landdb_store::AccessStore::subscriptions(store).await.map_err(|e| ApiError::store(&e))?;
    if held.iter().filter(|s| s.agency == access.caller.agency.name).count() >= MAX_SUBSCRIPTIONS {
        return Err(ApiError::bad_parameter(format!(
            "agency {} has {MAX_SUBSCRIPTIONS} subscriptions, the most it may have: delete one first",
            access.caller.agency.name
        )));
    }
    let mut id = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    let subscription = Subscription {
        id: hex::encode(id),
        agency: access.caller.agency.name.clone(),
        key_id: access.caller.key.id.clone(),
        callback: new.callback,
        communes: new.communes,
        land_use: new.land_use,
        filter: new.filter,
        note: None,
        secret: webhook::new_secret(),
        token: None,
        state: SubscriptionState::Active,
        failures: 0,
        created_at: chrono::Utc::now(),
    };
    landdb_store::AccessStore::put_subscription(store, &subscription).await.map_err(|e| ApiError::store(&e))?;
    let mut body = shown(&subscription, &call.base);
    body["secret"] = json!(subscription.secret);
    Ok(answer(StatusCode::CREATED, body))
}

/// The caller's own subscription `id` (another agency's is one that does not exist).
async fn own(app: &AppState, access: &Access, id: &str) -> Result<Subscription, ApiError> {
    let store = app.sources.webhook_store()?;
    let all = landdb_store::AccessStore::subscriptions(store).await.map_err(|e| ApiError::store(&e))?;
    all.into_iter()
        .find(|s| s.id == id && s.agency == access.caller.agency.name)
        .ok_or_else(|| ApiError::not_found(format!("there is no subscription {id}")))
}

pub async fn list(
    State(app): State<Arc<AppState>>,
    access: Access,
    call: crate::routes::Call,
) -> Result<Response, ApiError> {
    let store = app.sources.webhook_store()?;
    let all = landdb_store::AccessStore::subscriptions(store).await.map_err(|e| ApiError::store(&e))?;
    let mine: Vec<serde_json::Value> =
        all.iter().filter(|s| s.agency == access.caller.agency.name).map(|s| shown(s, &call.base)).collect();
    Ok(answer(StatusCode::OK, json!({ "subscriptions": mine })))
}

pub async fn one(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(id): Path<String>,
    call: crate::routes::Call,
) -> Result<Response, ApiError> {
    Ok(answer(StatusCode::OK, shown(&own(&app, &access, &id).await?, &call.base)))
}

pub async fn delete(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    own(&app, &access, &id).await?;
    let store = app.sources.webhook_store()?;
    landdb_store::AccessStore::delete_subscription(store, &id).await.map_err(|e| ApiError::store(&e))?;
    Ok(answer(StatusCode::OK, json!({ "deleted": id })))
}

/// The caller's subscription `id` and its dead letters.
async fn own_with_letters(
    app: &AppState,
    access: &Access,
    id: &str,
) -> Result<(Subscription, Vec<landdb_access::webhook::DeadLetter>), ApiError> {
    let subscription = own(app, access, id).await?;
    let store = app.sources.webhook_store()?;
    let letters = landdb_store::AccessStore::dead_letters(store, id).await.map_err(|e| ApiError::store(&e))?;
    Ok((subscription, letters))
}

pub async fn dead_letters(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, letters) = own_with_letters(&app, &access, &id).await?;
    let shown: Vec<serde_json::Value> = letters
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "delivery": d.delivery,
                "attempts": d.attempts,
                "error": d.error,
                "failed_at": d.failed_at,
                "replayed_at": d.replayed_at,
                "body": serde_json::from_str::<serde_json::Value>(&d.body).unwrap_or_default(),
            })
        })
        .collect();
    Ok(answer(StatusCode::OK, json!({ "dead_letters": shown })))
}

/// Delivers the dead letters not yet replayed again (each once, signed anew) and resumes the
/// subscription.
pub async fn replay(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (mut subscription, letters) = own_with_letters(&app, &access, &id).await?;
    let store = app.sources.webhook_store()?;
    let (mut delivered, mut failed) = (0, 0);
    for d in letters.iter().filter(|d| d.replayed_at.is_none()) {
        match deliver::post(&subscription, &d.delivery, d.body.as_bytes()).await {
            Ok(()) => {
                landdb_store::AccessStore::mark_replayed(store, d.id, chrono::Utc::now())
                    .await
                    .map_err(|e| ApiError::store(&e))?;
                delivered += 1;
            }
            Err(_) => failed += 1,
        }
    }
    subscription.state = SubscriptionState::Active;
    subscription.failures = 0;
    subscription.note = None;
    landdb_store::AccessStore::update_subscription(store, &subscription).await.map_err(|e| ApiError::store(&e))?;
    Ok(answer(StatusCode::OK, json!({ "replayed": delivered, "failed": failed, "state": subscription.state })))
}
