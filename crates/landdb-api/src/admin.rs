//! Managing agencies and keys, and reading the audit log: the operations `landdb agency`,
//! `landdb key` and `landdb audit` run, and the admin API (`/admin/…`, operator only) over the
//! same functions.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use landdb_access::{Agency, Broken, KeyRecord, NewKey, Verified};
use landdb_model::ReferenceData;
use landdb_store::{AccessStore, AnyStore, AskedParcel, AuditQuery, StoreError};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::access::Access;
use crate::ogc::{ApiError, JSON, json_response};

/// Why a management operation failed, in words for the operator.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(m) => ApiError::bad_parameter(m),
            AdminError::NotFound(m) => ApiError::not_found(m),
            AdminError::Store(e) => ApiError::store(&e),
        }
    }
}

/// Creates or replaces an agency, after checking its policy against the reference data.
pub async fn save_agency(store: &AnyStore, reference: &ReferenceData, agency: &Agency) -> Result<(), AdminError> {
    agency.validate(reference).map_err(|e| AdminError::Invalid(e.to_string()))?;
    store.put_agency(agency).await?;
    Ok(())
}

/// A new key for `agency`; the token is shown once and only its hash is kept.
pub async fn new_key(store: &AnyStore, agency: &str, expires_at: Option<DateTime<Utc>>) -> Result<NewKey, AdminError> {
    require_agency(store, agency).await?;
    let key = landdb_access::key::generate(agency, Utc::now(), expires_at);
    store.put_key(&key.record).await?;
    Ok(key)
}

/// Lets the client certificate whose public key has SHA-256 `spki_sha256` (hex) identify
/// `agency` over mutual TLS: kept as a key is (its id `cert-…`; revoked, listed and audited like
/// any key). No secret to show: the certificate's
/// private key is the client's.
pub async fn certificate_key(
    store: &AnyStore,
    agency: &str,
    spki_sha256: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<KeyRecord, AdminError> {
    let spki = spki_sha256.to_ascii_lowercase();
    if spki.len() != 64 || !spki.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AdminError::Invalid(format!(
            "{spki_sha256}: not a SHA-256 in hex (64 digits) of a certificate's public key"
        )));
    }
    credential_key(store, agency, "cert", &crate::tls::credential(&spki), expires_at).await
}

/// Keeps a credential other than a key (a client certificate's, a platform client's) as a key
/// of `agency`: its hash, and an id of `kind` and 16 digits of the hash.
async fn credential_key(
    store: &AnyStore,
    agency: &str,
    kind: &str,
    credential: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<KeyRecord, AdminError> {
    require_agency(store, agency).await?;
    let hash = landdb_access::key::hash(credential);
    let record = KeyRecord {
        id: format!("{kind}-{}", &hash[..16]),
        agency: agency.to_owned(),
        hash,
        created_at: Utc::now(),
        expires_at,
        revoked_at: None,
    };
    store.put_key(&record).await?;
    Ok(record)
}

/// Lets the OAuth2 client `client` of the identity provider `issuer` identify `agency`: its
/// tokens (`serve --oauth-…`) are then the agency's. Kept as a key is (its id `oauth-…`),
/// revoked, listed and audited like one.
pub async fn oauth_key(
    store: &AnyStore,
    agency: &str,
    issuer: &str,
    client: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<KeyRecord, AdminError> {
    if issuer.is_empty() || client.is_empty() {
        return Err(AdminError::Invalid("give the identity provider's issuer and the client's id".to_owned()));
    }
    credential_key(store, agency, "oauth", &crate::oauth::credential(issuer, client), expires_at).await
}

/// Fails unless the store has an agency named `agency`.
async fn require_agency(store: &AnyStore, agency: &str) -> Result<(), AdminError> {
    if store.agencies().await?.iter().any(|a| a.name == agency) {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!("there is no agency `{agency}` (`landdb agency list` shows them)")))
    }
}

/// Revokes a key at once, on every running server (within their reload interval).
pub async fn revoke(store: &AnyStore, id: &str) -> Result<(), AdminError> {
    if store.end_key(id, Some(Utc::now()), None).await? {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!("there is no key `{id}`")))
    }
}

/// A new key for the agency of key `id`; the old one keeps working for `overlap`, then expires.
pub async fn rotate(store: &AnyStore, id: &str, overlap: chrono::Duration) -> Result<NewKey, AdminError> {
    let old = store
        .keys()
        .await?
        .into_iter()
        .find(|k| k.id == id)
        .ok_or_else(|| AdminError::NotFound(format!("there is no key `{id}`")))?;
    let fresh = new_key(store, &old.agency, old.expires_at.filter(|e| *e > Utc::now() + overlap)).await?;
    let ends = Utc::now() + overlap;
    store.end_key(id, None, Some(old.expires_at.map_or(ends, |e| e.min(ends)))).await?;
    Ok(fresh)
}

/// Follows the whole chain to the real end of the log (not only to the recorded head), a page at
/// a time, with every block's index columns checked against its entries.
pub async fn verify(store: &AnyStore) -> Result<Result<Verified, Broken>, AdminError> {
    Ok(store.verify_audit(&mut |_| {}).await?)
}

/// Key metadata as lists show it (never the hash).
pub fn key_json(k: &KeyRecord) -> serde_json::Value {
    json!({
        "id": k.id, "agency": k.agency, "created_at": k.created_at,
        "expires_at": k.expires_at, "revoked_at": k.revoked_at, "usable": k.usable(Utc::now()),
    })
}

fn ok(status: StatusCode, body: serde_json::Value) -> Response {
    json_response(status, JSON, body.to_string())
}

pub async fn list_agencies(State(app): State<Arc<AppState>>, access: Access) -> Result<Response, ApiError> {
    let keys = app.sources.operator_store(&access)?.keys().await.map_err(|e| ApiError::store(&e))?;
    let agencies = app.sources.operator_store(&access)?.agencies().await.map_err(|e| ApiError::store(&e))?;
    let list: Vec<serde_json::Value> = agencies
        .iter()
        .map(|a| {
            let mut v = json!(a);
            v["keys"] = keys.iter().filter(|k| k.agency == a.name).map(key_json).collect();
            v
        })
        .collect();
    Ok(ok(StatusCode::OK, json!({ "agencies": list })))
}

/// `POST /admin/agencies` with an agency (name, title, role, policy) as JSON.
pub async fn put_agency(
    State(app): State<Arc<AppState>>,
    access: Access,
    body: Result<Json<NewAgency>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(a) =
        body.map_err(|e| ApiError::bad_parameter(format!("the agency is not valid JSON: {}", e.body_text())))?;
    let agency = Agency { name: a.name, title: a.title, role: a.role, policy: a.policy, created_at: Utc::now() };
    save_agency(app.sources.operator_store(&access)?, &app.reference, &agency).await?;
    app.gate.reload(&app.reference).await.map_err(|e| ApiError::internal(&e))?;
    Ok(ok(StatusCode::CREATED, json!(agency)))
}

#[derive(Debug, Deserialize)]
pub struct NewAgency {
    pub name: String,
    pub title: String,
    pub role: landdb_access::Role,
    pub policy: landdb_access::Policy,
}

#[derive(Debug, Deserialize, Default)]
pub struct KeyOptions {
    pub expires_at: Option<DateTime<Utc>>,
    pub overlap_hours: Option<i64>,
}

fn options(body: Option<Json<KeyOptions>>) -> KeyOptions {
    body.map(|Json(o)| o).unwrap_or_default()
}

pub async fn create_key(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(name): Path<String>,
    body: Option<Json<KeyOptions>>,
) -> Result<Response, ApiError> {
    let key = new_key(app.sources.operator_store(&access)?, &name, options(body).expires_at).await?;
    app.gate.reload(&app.reference).await.map_err(|e| ApiError::internal(&e))?;
    Ok(ok(StatusCode::CREATED, json!({ "key": key.token, "id": key.record.id, "agency": name })))
}

pub async fn revoke_key(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    revoke(app.sources.operator_store(&access)?, &id).await?;
    app.gate.reload(&app.reference).await.map_err(|e| ApiError::internal(&e))?;
    Ok(ok(StatusCode::OK, json!({ "revoked": id })))
}

pub async fn rotate_key(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(id): Path<String>,
    body: Option<Json<KeyOptions>>,
) -> Result<Response, ApiError> {
    let hours = options(body).overlap_hours.unwrap_or(24);
    let key = rotate(app.sources.operator_store(&access)?, &id, chrono::Duration::hours(hours)).await?;
    app.gate.reload(&app.reference).await.map_err(|e| ApiError::internal(&e))?;
    Ok(ok(
        StatusCode::CREATED,
        json!({ "key": key.token, "id": key.record.id, "replaces": id, "overlap_hours": hours }),
    ))
}

pub const AUDIT: &[(&str, &str)] = &[
    ("agency", "only this agency's entries"),
    ("since", "entries at or after this instant (RFC 3339 or a date)"),
    ("until", "entries before this instant"),
    (
        "parcel",
        "only entries that disclosed this parcel (any version of its key: give a version): every agency that received it",
    ),
    ("personal", "with parcel: `true` for only the entries that disclosed its personal data"),
    ("after", "entries after this sequence number (paging)"),
    ("limit", "entries a page, at most 10000 (1000 when absent)"),
];

/// `GET /admin/audit`: who accessed what; `parcel=` answers "which agencies received this parcel"
/// over every version of the parcel (by its key), `personal=true` "who has seen its personal data".
pub async fn audit(
    State(app): State<Arc<AppState>>,
    access: Access,
    call: crate::routes::Call,
) -> Result<Response, ApiError> {
    let params =
        crate::params::Params::parse(call.query.as_deref(), &AUDIT.iter().map(|(n, _)| *n).collect::<Vec<_>>())?;
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, ApiError> {
        params
            .get(name)
            .map(|raw| {
                crate::routes::instant(raw)
                    .map_err(|_| ApiError::bad_parameter(format!("{name}={raw}: give an RFC 3339 instant or a date")))
            })
            .transpose()
    };
    let number = |name: &str, default: i64| -> Result<i64, ApiError> {
        params.get(name).map_or(Ok(default), |raw| {
            raw.parse::<i64>().map_err(|_| ApiError::bad_parameter(format!("{name}={raw}: give a whole number")))
        })
    };
    // `parcel`: every agency that received any version of the parcel; with `personal=true`, only
    // those that received its personal data.
    let asked = match params.get("parcel") {
        None => None,
        Some(raw) => {
            let id = raw
                .parse::<i64>()
                .map_err(|_| ApiError::bad_parameter(format!("parcel={raw}: give a parcel version ID")))?;
            let store = app.sources.operator_store(&access)?;
            Some(AskedParcel::of(store, id).await.map_err(|e| ApiError::store(&e))?)
        }
    };
    let personal_only = match params.get("personal") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(ApiError::bad_parameter(format!("personal={other}: give true or false"))),
    };
    let communes = asked.as_ref().and_then(|a| a.communes.clone());
    let versions = asked.map(|a| a.versions);
    let (disclosed, received) = if personal_only { (versions, None) } else { (None, versions) };
    let query = AuditQuery {
        agency: params.get("agency").map(str::to_owned),
        since: time("since")?,
        until: time("until")?,
        disclosed,
        received,
        communes,
        after: number("after", 0)?,
        limit: number("limit", 1000)?.clamp(1, 10_000),
    };
    let entries = app.sources.operator_store(&access)?.audit_entries(&query).await.map_err(|e| ApiError::store(&e))?;
    let parcels: u64 = entries.iter().map(|e| e.event.parcels).sum();
    Ok(ok(StatusCode::OK, json!({ "entries": entries, "numberReturned": entries.len(), "parcels": parcels })))
}

pub async fn verify_audit(State(app): State<Arc<AppState>>, access: Access) -> Result<Response, ApiError> {
    app.gate.audit.flush().await;
    Ok(match verify(app.sources.operator_store(&access)?).await? {
        Ok(v) => ok(StatusCode::OK, json!({ "intact": true, "entries": v.entries, "head": v.head })),
        Err(b) => {
            let mut event = crate::security::Event::new(
                crate::security::Kind::TamperFound,
                format!("the audit log is broken at entry {}: {}", b.seq, b.why),
            );
            event.agency = Some(access.caller.agency.name.clone());
            app.security.record(event);
            ok(StatusCode::OK, json!({ "intact": false, "broken_at": b.seq, "why": b.why }))
        }
    })
}
