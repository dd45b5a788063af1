//! Who is asking, and what they may see: the one enforcement point every request passes.
//!
//! [`admit`] runs in front of every route. It knows what each route needs ([`requirement`]):
//! nothing (the landing page, conformance, the OpenAPI document, health, the static pages), any
//! valid key (collection metadata), an operation of the caller's policy, or the operator role.
//! It reads `Authorization: Bearer <key>` (or, over mutual TLS without one, the client
//! certificate's credential: [`crate::tls`]), finds the key's agency, checks the policy's validity,
//! operations, rate and daily quota, and hands the handler an [`Access`]: the agency's area
//! ([`Access::sees`], which every parcel passes before it leaves), its fields
//! ([`Access::personal_data`]) and its response limit. After the handler, [`Pass::record`] puts
//! what the answer disclosed ([`Disclosed`]) in the audit log and against the quota.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::scope::Disclosure;
use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use landdb_access::limits::{DailyQuota, QuotaLease, RateLimiter, Shortfall, day_of, lease_size};
use landdb_access::{Agency, AuditEvent, KeyRecord, Operation, Role, Scope};
use landdb_engine::Parcel;
use landdb_model::ReferenceData;
use landdb_store::{AccessStore, AnyStore};
use tokio::sync::oneshot;

use crate::AppState;
use crate::ogc::ApiError;

/// An agency's key, resolved: what a request runs under.
#[derive(Debug)]
pub struct Caller {
    pub agency: Agency,
    pub key: KeyRecord,
    pub scope: Scope,
    /// The agency, key and purpose as its audit entries name them: shared by every entry, not
    /// copied into each.
    on_record: OnRecord,
}

#[derive(Debug)]
struct OnRecord {
    agency: Arc<str>,
    key_id: Arc<str>,
    purpose: Arc<str>,
}

impl Caller {
    pub fn new(agency: Agency, key: KeyRecord, scope: Scope) -> Caller {
        let on_record = OnRecord {
            agency: agency.name.as_str().into(),
            key_id: key.id.as_str().into(),
            purpose: agency.policy.purpose.as_str().into(),
        };
        Caller { agency, key, scope, on_record }
    }
}

/// The caller of a request, as handlers see it.
#[derive(Debug, Clone)]
pub struct Access {
    pub caller: Arc<Caller>,
    /// Features the agency may still take today, when it has a daily quota (as admitted: pages
    /// are cut to it; what is taken is reserved when parcels are released, see [`Access::take`]).
    pub remaining_today: Option<u64>,
    /// The daily quotas, where parcels are reserved.
    quota: Option<Arc<Quotas>>,
}

impl Access {
    /// A caller that sees every parcel everywhere, with or without personal data: for the
    /// command line (`landdb export`, run by the operator on the server) and for tests.
    pub fn nation(personal_data: bool) -> Access {
        let policy = landdb_access::Policy {
            area: landdb_access::Area::Nation,
            personal_data,
            operations: Role::Operator.default_operations(),
            limits: landdb_access::Limits::default(),
            valid_from: None,
            valid_until: None,
            purpose: "the national data centre's own work".to_owned(),
        };
        let agency = Agency {
            name: "operator".to_owned(),
            title: "National data centre".to_owned(),
            role: Role::Operator,
            policy,
            created_at: Utc::now(),
        };
        let key = KeyRecord {
            id: "local".to_owned(),
            agency: agency.name.clone(),
            hash: String::new(),
            created_at: agency.created_at,
            expires_at: None,
            revoked_at: None,
        };
        Access { caller: Arc::new(Caller::new(agency, key, Scope::Nation)), remaining_today: None, quota: None }
    }

    /// Takes `n` parcels from the caller's limits before they are sent: at most the features a
    /// response (unless `bulk`: an export by an agency granted bulk export), and never more
    /// than what is left of today's quota, reserved at once so that concurrent requests cannot
    /// together pass it. Refused whole: 403 over the response limit, 429 over the quota.
    pub async fn take(&self, n: u64, bulk: bool) -> Result<(), ApiError> {
        let policy = &self.caller.agency.policy;
        let name = &self.caller.agency.name;
        if let Some(max) = policy.limits.features_per_response
            && n > max
            && !bulk
        {
            return Err(ApiError::forbidden(format!(
                "this answer would hold {n} parcels; agency {name} may take at most {max} in one answer: narrow the request (a smaller box, zoom in, a commune, a filter)"
            )));
        }
        if let (Some(limit), Some(quota)) = (policy.limits.features_per_day, &self.quota) {
            quota.reserve(name, n, limit).await.map_err(|refusal| match refusal {
                Refusal::Short(short) => ApiError::too_many(
                    format!(
                        "this answer would hold {n} parcels; agency {name} has {} of its {limit} parcels for today left",
                        short.left
                    ),
                    short.until_tomorrow,
                ),
                Refusal::Store(e) => ApiError::store(&e),
            })?;
        }
        Ok(())
    }

    /// Whether personal data (the address, right holders) may be disclosed.
    pub fn personal_data(&self) -> bool {
        self.caller.agency.policy.personal_data
    }

    /// Whether the parcel lies in the agency's area. A parcel it does not see does not exist for
    /// it: not in pages, counts, tiles or exports, and a direct request for it is a 404.
    pub fn sees(&self, parcel: &Parcel<'_>) -> bool {
        self.caller.scope.sees(parcel.commune(), || parcel.geometry())
    }

    /// Whether the agency sees everything (no per-parcel check needed).
    pub fn sees_everything(&self) -> bool {
        self.caller.scope.is_nation()
    }

    pub fn allows(&self, op: Operation) -> bool {
        self.caller.agency.policy.allows(op)
    }

    pub fn agency(&self) -> &str {
        &self.caller.agency.name
    }

    pub fn is_operator(&self) -> bool {
        self.caller.agency.role == Role::Operator
    }

    /// How many parcels a page asked for `asked` may hold: never more than [`Access::max_features`]
    /// (and at least one, so that a page always moves).
    pub fn page_limit(&self, asked: usize) -> usize {
        self.max_features().map_or(asked, |m| asked.min(m.max(1)))
    }

    /// The most features one response may hold: the policy's limit and what is left today.
    pub fn max_features(&self) -> Option<usize> {
        let limit = self.caller.agency.policy.limits.features_per_response;
        let today = self.remaining_today;
        let m = match (limit, today) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        m.map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Access {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Moved out, not cloned (a handler takes its caller once).
        parts.extensions.remove::<Access>().ok_or_else(unauthorized)
    }
}

/// The lookup by citizen: its path holds a citizen ID, which no log or audit entry may hold.
pub const HOLDER_ROUTE: &str = "/holders/{citizen_id}/parcels";

/// The parameter a lookup by citizen's audit entry names the citizen by (`subject=` and the
/// blind index); what `landdb audit subject` looks for.
pub fn subject_param(mark: &str) -> String {
    format!("subject={mark}")
}

/// The path as logs may show it: a citizen ID in a holder lookup's path replaced by the
/// template's name for it.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/holders/") {
        Some(rest) => {
            let tail = rest.find('/').map_or("", |i| &rest[i..]);
            format!("/holders/{{citizen_id}}{tail}").into()
        }
        None => path.into(),
    }
}

/// What a route needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Open to anyone: nothing about parcels.
    Public,
    /// Any valid key: metadata (collections, queryables), a job of one's own.
    Key,
    /// An operation of the caller's policy; the request is audited.
    Operation(Operation),
    /// The national operator (the admin API, metrics); audited.
    Operator,
}

/// The requirement of each route (by its path template): the one table of who may call what.
pub fn requirement(method: &Method, route: &str) -> Requirement {
    use Requirement::*;
    match route {
        "/" | "/conformance" | "/api" | "/health" | "/ready" | "/map" | "/upload" | "/assets/{name}" => Public,
        "/collections" | "/collections/{id}" | "/collections/{id}/queryables" | "/collections/{id}/tiles" => Key,
        "/collections/{id}/items"
        | "/collections/{id}/changes"
        | "/collections/{collection}/tiles/{set}/{z}/{y}/{x}" => Operation(self::Operation::Items),
        "/collections/{collection}/items/{id}"
        | "/parcels/at"
        | "/parcels/national-id/{id}"
        | "/parcels/key/{commune}/{sheet}/{number}" => Operation(self::Operation::Lookup),
        "/collections/{collection}/items/{id}/history" => Operation(self::Operation::History),
        "/collections/{id}/export" => Operation(self::Operation::Export),
        HOLDER_ROUTE => Operation(self::Operation::HolderLookup),
        "/jobs" if method == Method::POST => Operation(self::Operation::Upload),
        // Webhooks deliver the change feed: whoever may follow it may subscribe.
        "/subscriptions"
        | "/subscriptions/{id}"
        | "/subscriptions/{id}/dead-letters"
        | "/subscriptions/{id}/replay" => Operation(self::Operation::Items),
        "/jobs/{id}" | "/jobs/{id}/report" | "/jobs/{id}/quarantine" => Operation(self::Operation::Upload),
        // The admin API, metrics, and anything new until it is placed here: deny by default.
        _ => Operator,
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "this resource needs an API key: send `Authorization: Bearer <key>` (keys are issued by the national data centre)",
    )
}

fn too_many(why: String, wait: Duration) -> Response {
    ApiError::too_many(why, wait).into_response()
}

/// The keys this process knows, by the SHA-256 of their token.
#[derive(Debug, Default)]
struct Keys {
    by_digest: HashMap<[u8; 32], Arc<Caller>>,
    /// Revoked and expired keys, never admitted: only to say so in a security event.
    ended: HashMap<[u8; 32], Ended>,
}

/// A key that no longer works, as a security event names it.
#[derive(Debug, Clone)]
struct Ended {
    agency: String,
    id: String,
    revoked: bool,
}

impl Ended {
    fn of(key: &KeyRecord, now: chrono::DateTime<Utc>) -> Ended {
        Ended { agency: key.agency.clone(), id: key.id.clone(), revoked: key.revoked_at.is_some_and(|r| r <= now) }
    }
}

/// Daily quotas: counted in the store, which every server process shares, and leased from it in
/// shares ([`lease_size`]) that this process hands out without a round trip. Several processes
/// together never pass an agency's quota; what a process holds when it stops goes back
/// ([`Quotas::give_back`]), and what a process that dies held is spent for the day.
#[derive(Debug)]
pub struct Quotas {
    held: DailyQuota,
    store: AnyStore,
}

/// Why a reservation failed.
#[derive(Debug)]
enum Refusal {
    Short(Shortfall),
    Store(landdb_store::StoreError),
}

impl Quotas {
    fn new(store: AnyStore) -> Quotas {
        Quotas { held: DailyQuota::default(), store }
    }

    /// Takes `n` parcels from `agency`'s quota `limit` for today, all or nothing: from what
    /// this process holds, leasing more from the store when that is not enough.
    async fn reserve(&self, agency: &str, n: u64, limit: u64) -> Result<(), Refusal> {
        loop {
            let now = Utc::now();
            let short = match self.held.take_held(agency, n, now) {
                Ok(()) => return Ok(()),
                Err(short) => short,
            };
            let lease = QuotaLease::today(agency, now, short.by, lease_size(short.by, limit), limit);
            let leased = self.store.lease_quota(&lease).await.map_err(Refusal::Store)?;
            self.held.hold(agency, lease.day, leased);
            if leased.granted == 0 {
                let (_, until_tomorrow) = day_of(now);
                let left = self.held.remaining(agency, limit, now).unwrap_or(0);
                return Err(Refusal::Short(Shortfall { left, until_tomorrow }));
            }
            // Granted: taken on the next turn (unless concurrent requests took it first, when
            // this one leases again).
        }
    }

    /// Gives what this process holds and has not sent back to the store's count (when the
    /// server stops), so that other processes may hand it out today.
    pub async fn give_back(&self) {
        for (agency, day, features) in self.held.release_all() {
            if let Err(e) = self.store.return_quota(&agency, day, features).await {
                tracing::warn!(%agency, features, error = %e, "cannot give back the unsent part of a quota lease");
            }
        }
    }
}

/// The access state of the server: keys and policies (reloaded when the store's generation
/// moves), the rate and quota counters, and the audit log.
#[derive(Debug)]
pub struct Gate {
    keys: RwLock<Arc<Keys>>,
    generation: AtomicI64,
    /// Held through a reload: two at once (the poller's and one after an admin change) could
    /// otherwise end with the older read written last, a revoked key working again or a new
    /// one refused until the next poll.
    reloading: tokio::sync::Mutex<()>,
    limiter: RateLimiter,
    /// This process among the servers sharing the database (its id, and how many are live):
    /// an agency's requests a second are shared out among them.
    pub process: ServerProcess,
    pub quota: Arc<Quotas>,
    pub audit: AuditLog,
    /// Where agencies and keys are read from.
    store: AnyStore,
    /// Seals the paging cursors handed to callers.
    pub cursors: crate::cursor::CursorKey,
}

impl Gate {
    /// Loads every agency and key from the store and starts the audit writer.
    pub async fn load(
        store: &AnyStore,
        reference: &ReferenceData,
        spool: crate::spool::Spool,
    ) -> Result<Gate, landdb_store::StoreError> {
        let gate = Gate {
            keys: RwLock::new(Arc::new(Keys::default())),
            generation: AtomicI64::new(i64::MIN),
            reloading: tokio::sync::Mutex::new(()),
            limiter: RateLimiter::default(),
            process: ServerProcess::new(),
            quota: Arc::new(Quotas::new(store.clone())),
            audit: AuditLog::start(store.clone(), spool),
            store: store.clone(),
            cursors: crate::cursor::CursorKey::from_env_or_random(),
        };
        gate.reload(reference).await?;
        // Counted among the servers at once, not a second late with the whole rate.
        gate.process.live.store(store.heartbeat(&gate.process.id).await?.max(1), Ordering::Relaxed);
        // What each agency with a quota has left today, as the store counts it (a restart does
        // not reset a quota): pages are cut to it.
        let now = Utc::now();
        for agency in store.agencies().await? {
            if let Some(limit) = agency.policy.limits.features_per_day {
                let ask = QuotaLease::today(&agency.name, now, 0, 0, limit);
                gate.quota.held.hold(&agency.name, ask.day, store.lease_quota(&ask).await?);
            }
        }
        Ok(gate)
    }

    /// Reads agencies and keys again when they changed since the last read.
    pub async fn reload(&self, reference: &ReferenceData) -> Result<(), landdb_store::StoreError> {
        let _one_at_a_time = self.reloading.lock().await;
        let store = &self.store;
        let generation = store.access_generation().await?;
        if generation == self.generation.load(Ordering::Acquire) {
            return Ok(());
        }
        let agencies: HashMap<String, Agency> =
            store.agencies().await?.into_iter().map(|a| (a.name.clone(), a)).collect();
        let mut keys = Keys::default();
        let now = Utc::now();
        for key in store.keys().await? {
            if !key.usable(now) {
                if let Some(digest) = landdb_access::key::digest_of_hash(&key.hash) {
                    keys.ended.insert(digest, Ended::of(&key, now));
                }
                continue;
            }
            let Some(agency) = agencies.get(&key.agency) else { continue };
            let Some(digest) = landdb_access::key::digest_of_hash(&key.hash) else {
                tracing::warn!(key = key.id, "key's stored hash is not a SHA-256; the key is refused");
                continue;
            };
            match Scope::compile(&agency.policy.area, reference) {
                Ok(scope) => {
                    keys.by_digest.insert(digest, Arc::new(Caller::new(agency.clone(), key, scope)));
                }
                Err(e) => {
                    tracing::warn!(agency = agency.name, error = %e, "agency's area does not compile; its keys are refused")
                }
            }
        }
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
        self.generation.store(generation, Ordering::Release);
        tracing::debug!(generation, "access rules loaded");
        Ok(())
    }

    /// The generation of the rules in force (part of every ETag).
    pub fn generation(&self) -> i64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The access of the key `key_id` for a webhook delivery, as a request with that key to
    /// the change feed would be admitted (usable key, policy in force, the `items` operation,
    /// rate and quota); `None` when such a request would be refused.
    pub fn delivery_access(&self, key_id: &str, now: chrono::DateTime<Utc>) -> Option<Access> {
        let caller = {
            let keys = self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            keys.by_digest.values().find(|c| c.key.id == key_id).cloned()?
        };
        if !caller.key.usable(now) {
            return None;
        }
        let need = Requirement::Operation(Operation::Items);
        let remaining_today = check_policy(self, &caller, need, "/subscriptions", now).ok()?;
        let quota = caller.agency.policy.limits.features_per_day.map(|_| Arc::clone(&self.quota));
        Some(Access { caller, remaining_today, quota })
    }

    /// The caller of the key `token` (a bearer token that is not a key's is nobody's).
    fn caller(&self, token: &str, now: chrono::DateTime<Utc>) -> Option<Arc<Caller>> {
        landdb_access::key::is_key(token).then(|| self.holder(token, now))?
    }

    /// The caller of a credential the connection or a verified token proved.
    fn caller_by(&self, credential: &Credential, now: chrono::DateTime<Utc>) -> Option<Arc<Caller>> {
        self.holder(&credential.0, now)
    }

    /// The key or credential `token` was, if it no longer works (to say why a request was
    /// refused).
    fn ended(&self, token: &str, now: chrono::DateTime<Utc>) -> Option<Ended> {
        let digest = landdb_access::key::digest(token);
        let keys = self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = keys.by_digest.get(&digest) {
            // Ended since the rules were loaded.
            return (!c.key.usable(now)).then(|| Ended::of(&c.key, now));
        }
        keys.ended.get(&digest).cloned()
    }

    fn holder(&self, token: &str, now: chrono::DateTime<Utc>) -> Option<Arc<Caller>> {
        let digest = landdb_access::key::digest(token);
        // Looked up under the read lock, the key set not cloned: every request passes here, on
        // every core, and each shared counter it touches is a cache line the cores pass around.
        let caller =
            self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).by_digest.get(&digest).cloned()?;
        caller.key.usable(now).then_some(caller)
    }
}

/// Keeps the rules current: polls the store's access generation (a revoked key stops working
/// on every process within one interval), and says once a second that this process is alive,
/// learning how many servers share the database. Runs until the process ends.
pub async fn follow_access(app: Arc<AppState>) {
    let mut beat = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(RELOAD_INTERVAL).await;
        if let Err(e) = app.gate.reload(&app.reference).await {
            tracing::warn!(error = %e, "cannot reload the access rules; the ones in force stay");
        }
        if beat.elapsed() >= HEARTBEAT {
            beat = tokio::time::Instant::now();
            match app.gate.store.heartbeat(&app.gate.process.id).await {
                Ok(live) => app.gate.process.live.store(live.max(1), Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot tell the store this server is alive; the count of servers stays")
                }
            }
        }
    }
}

/// How often a server says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// This server process among those sharing one database.
#[derive(Debug)]
pub struct ServerProcess {
    /// Random, for its row in `server_process`.
    pub id: String,
    live: std::sync::atomic::AtomicU64,
}

impl ServerProcess {
    fn new() -> ServerProcess {
        let mut id = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        ServerProcess { id: hex::encode(id), live: std::sync::atomic::AtomicU64::new(1) }
    }

    /// How many servers were live when last asked (at least this one).
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed).max(1)
    }
}

impl Gate {
    /// This server stops: no longer counted among those sharing the rate limits.
    pub async fn leave(&self) {
        if let Err(e) = self.store.leave(&self.process.id).await {
            tracing::warn!(error = %e, "cannot take this server off the list of live ones; it drops off in 3 s");
        }
    }
}

/// How often running servers look for changed agencies and keys.
pub const RELOAD_INTERVAL: Duration = Duration::from_millis(200);

/// The client certificate the request's connection showed (mutual TLS), verified against the
/// client CA.
fn client_certificate(request: &Request) -> Option<&crate::tls::ClientCertificate> {
    request.extensions().get::<axum::extract::ConnectInfo<crate::tls::Peer>>()?.0.certificate.as_ref()
}

/// What a request shows to say who it is, decided once: a key; a credential its connection or
/// a verified token proved; a bearer token that is neither; or nothing.
enum Presented<'r> {
    Key(&'r str),
    Certificate(Credential),
    Token(Credential),
    Unknown,
    Nothing,
}

impl<'r> Presented<'r> {
    /// A bearer token decides (a verified platform token, else a key); without one, the
    /// client certificate its connection showed (mutual TLS).
    fn of(request: &'r Request) -> Presented<'r> {
        match bearer(request.headers()) {
            Some(token) => match request.extensions().get::<crate::oauth::Verified>() {
                Some(verified) => Presented::Token(verified.0.clone()),
                None if landdb_access::key::is_key(token) => Presented::Key(token),
                None => Presented::Unknown,
            },
            None => match client_certificate(request) {
                Some(certificate) => Presented::Certificate(certificate.credential()),
                None => Presented::Nothing,
            },
        }
    }

    fn caller(&self, gate: &Gate, now: chrono::DateTime<Utc>) -> Option<Arc<Caller>> {
        match self {
            Presented::Key(token) => gate.caller(token, now),
            Presented::Certificate(c) | Presented::Token(c) => gate.caller_by(c, now),
            Presented::Unknown | Presented::Nothing => None,
        }
    }

    /// What it was, if it no longer works.
    fn ended(&self, gate: &Gate, now: chrono::DateTime<Utc>) -> Option<Ended> {
        match self {
            Presented::Key(token) => gate.ended(token, now),
            Presented::Certificate(c) | Presented::Token(c) => gate.ended(&c.0, now),
            Presented::Unknown | Presented::Nothing => None,
        }
    }
}

/// The security event of a request refused with 401: a revoked or expired credential when it
/// was one of those (its agency named), a failed authentication otherwise.
fn refused_credential(
    app: &AppState,
    request: &Request,
    presented: &Presented<'_>,
    now: chrono::DateTime<Utc>,
) -> crate::security::Event {
    use crate::security::{Event, Kind};
    let known = presented.ended(&app.gate, now);
    let mut event = match (&known, presented) {
        (Some(e), _) if e.revoked => Event::new(Kind::CredentialRevoked, format!("credential {} was revoked", e.id)),
        (Some(e), _) => Event::new(Kind::CredentialExpired, format!("credential {} has expired", e.id)),
        (None, Presented::Nothing) => Event::new(Kind::AuthenticationFailed, "no credential"),
        (None, Presented::Certificate(_)) => {
            Event::new(Kind::AuthenticationFailed, "a client certificate that is nobody's")
        }
        (None, _) => Event::new(Kind::AuthenticationFailed, "a credential that is nobody's"),
    };
    if let Some(e) = known {
        event.agency = Some(e.agency);
        event.credential = Some(e.id);
    }
    event.request = Some(route_of(request));
    event.status = Some(401);
    event
}

/// A request as a security event names it: its method and route template (never the path a
/// client sent: it may be long, and it may name a parcel).
fn route_of(request: &Request) -> String {
    let route = request.extensions().get::<MatchedPath>().map_or("(no route)", MatchedPath::as_str);
    format!("{} {route}", request.method())
}

/// The security event of a known caller's refused request.
fn security_event(
    kind: crate::security::Kind,
    caller: &Caller,
    request: &Request,
    status: StatusCode,
) -> crate::security::Event {
    let mut event = crate::security::Event::new(kind, format!("refused with {status}"));
    event.agency = Some(caller.agency.name.clone());
    event.credential = Some(caller.key.id.clone());
    event.request = Some(route_of(request));
    event.status = Some(status.as_u16());
    event
}

/// A credential other than a key, proven by the connection (a client certificate) or by a
/// verified token (a platform's client): only [`crate::tls`] and [`crate::oauth`] make one, so
/// no text a request sends can pose as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    pub(crate) fn proven(text: String) -> Credential {
        Credential(text)
    }
}

/// The bearer token of a request, if it carries one.
pub(crate) fn bearer(parts: &axum::http::HeaderMap) -> Option<&str> {
    let value = parts.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The enforcement point (see the module's documentation), before the handler: `Ok(None)` for
/// a public route (nothing to check or record), `Ok(Some(pass))` for an admitted caller (the
/// handler finds its [`Access`] among the request's extensions), `Err` with the answer otherwise
/// (401, 403 or 429; refusals of a known caller are on record too: who tried what).
pub fn admit(app: &AppState, request: &mut Request) -> Result<Option<Pass>, Box<Response>> {
    let route = request.extensions().get::<MatchedPath>().map_or("", MatchedPath::as_str);
    let need = requirement(request.method(), route);
    if need == Requirement::Public {
        return Ok(None);
    }
    let now = Utc::now();
    // A key, a platform's token verified by the gateway, or the client certificate the
    // connection showed (mutual TLS): each a credential the store keeps as it keeps a key's.
    let presented = Presented::of(request);
    let Some(caller) = presented.caller(&app.gate, now) else {
        app.security.record(refused_credential(app, request, &presented, now));
        let mut response = unauthorized().into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"landdb\""));
        return Err(Box::new(response));
    };
    // What the audit entry says of the request (metadata routes are not audited).
    let line = (!matches!(need, Requirement::Key)).then(|| RequestLine::of(app, request, route));
    // No answer without its audit entry: when neither the primary nor the spool takes entries,
    // audited routes are refused (and put on record once one of them does).
    if line.is_some() && app.gate.audit.state.unrecordable() {
        return Err(Box::new(ApiError::audit_unavailable().into_response()));
    }
    let remaining_today = match check_policy(&app.gate, &caller, need, route, now) {
        Ok(remaining) => remaining,
        Err(refusal) => {
            if let Some(line) = &line {
                app.gate.audit.record(&caller, now, line, refusal.status(), Disclosure::default());
            }
            let kind = if refusal.status() == StatusCode::TOO_MANY_REQUESTS {
                crate::security::Kind::LimitReached
            } else {
                crate::security::Kind::Forbidden
            };
            app.security.record(security_event(kind, &caller, request, refusal.status()));
            return Err(refusal);
        }
    };
    // Only a caller with a daily quota reserves from it (see Access::take).
    let quota = caller.agency.policy.limits.features_per_day.map(|_| Arc::clone(&app.gate.quota));
    request.extensions_mut().insert(Access { caller: Arc::clone(&caller), remaining_today, quota });
    Ok(Some(Pass { caller, now, line }))
}

/// An admitted request, whose answer is still to be put on record.
#[derive(Debug)]
pub struct Pass {
    caller: Arc<Caller>,
    now: chrono::DateTime<Utc>,
    line: Option<RequestLine>,
}

impl Pass {
    /// The enforcement point after the handler: what the answer disclosed ([`Disclosure`], made
    /// when its parcels were released and taken from the quota) goes into the audit log.
    /// Returns whether an entry was recorded (an audited route).
    pub fn record(self, app: &AppState, response: &mut Response) -> bool {
        // Taken off the response: it is for the log, not for the layers outside.
        let disclosed = response.extensions_mut().remove::<Disclosure>().unwrap_or_default();
        app.security.taken(&self.caller.agency.name, disclosed.parcels(), self.now);
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            // A limit reached while the answer was made (the day's quota, uploads at once).
            let mut event =
                crate::security::Event::new(crate::security::Kind::LimitReached, "refused with 429 while answering");
            event.agency = Some(self.caller.agency.name.clone());
            event.credential = Some(self.caller.key.id.clone());
            event.status = Some(429);
            app.security.record(event);
        }
        match self.line {
            Some(line) => {
                app.gate.audit.record(&self.caller, self.now, &line, response.status(), disclosed);
                true
            }
            None => false,
        }
    }
}

/// The request as its audit entry records it: its method, path (the endpoint) and query (the
/// parameters). Kept as the request had them (a shared buffer, no copy) until the entry is queued.
#[derive(Debug)]
struct RequestLine {
    method: axum::http::Method,
    uri: axum::http::Uri,
    /// The endpoint and parameters recorded instead of the path and query, for a lookup by
    /// citizen: the route template, and the query with `subject=` the citizen's blind index
    /// (what `landdb audit subject` finds them by; the ID itself is never on record).
    instead: Option<(String, String)>,
}

impl RequestLine {
    fn of(app: &AppState, request: &Request, route: &str) -> RequestLine {
        let uri = request.uri();
        let instead = (route == HOLDER_ROUTE).then(|| {
            let citizen = uri.path().strip_prefix("/holders/").and_then(|r| r.split('/').next()).unwrap_or_default();
            // As the handler reads it (percent-decoded): `%30%34%38…` is the same citizen as
            // `048…`, and must be found under the same mark.
            let citizen = percent_encoding::percent_decode_str(citizen).decode_utf8_lossy();
            let subject = app.sources.subject_mark(&citizen);
            let params = match uri.query() {
                Some(q) if !q.is_empty() => format!("{q}&{}", subject_param(&subject)),
                _ => subject_param(&subject),
            };
            (route.to_owned(), params)
        });
        RequestLine { method: request.method().clone(), uri: uri.clone(), instead }
    }

    fn parts(&self) -> [&str; 3] {
        match &self.instead {
            Some((endpoint, params)) => [self.method.as_str(), endpoint, params],
            None => [self.method.as_str(), self.uri.path(), self.uri.query().unwrap_or_default()],
        }
    }
}

/// Whether the caller may make this request now: the policy in force, the operation or role the
/// route needs, the rate, the daily quota (what is left of it, when there is one).
fn check_policy(
    gate: &Gate,
    caller: &Caller,
    need: Requirement,
    route: &str,
    now: chrono::DateTime<Utc>,
) -> Result<Option<u64>, Box<Response>> {
    let policy = &caller.agency.policy;
    let name = &caller.agency.name;
    if !policy.in_force(now) {
        return Err(Box::new(
            ApiError::forbidden(format!(
                "the access of agency {name} is not in force now (valid {} to {})",
                policy.valid_from.map_or("from the start".to_owned(), |t| t.to_rfc3339()),
                policy.valid_until.map_or("without end".to_owned(), |t| t.to_rfc3339()),
            ))
            .into_response(),
        ));
    }
    match need {
        Requirement::Operation(op) if !policy.allows(op) => {
            let allowed: Vec<&str> = policy.operations.iter().map(|o| o.name()).collect();
            let allowed = if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") };
            return Err(Box::new(
                ApiError::forbidden(format!("agency {name} may not {}: its operations are {allowed}", op.name()))
                    .into_response(),
            ));
        }
        Requirement::Operator if caller.agency.role != Role::Operator => {
            return Err(Box::new(
                ApiError::forbidden(format!("only the national operator may use {route}")).into_response(),
            ));
        }
        _ => {}
    }
    // This process's share of the rate: the servers sharing the database hold it together.
    if let Some(rate) = policy.limits.requests_per_second
        && let Err(wait) = gate.limiter.take(name, rate / gate.process.live() as f64, std::time::Instant::now())
    {
        return Err(Box::new(too_many(format!("agency {name} may make {rate} requests a second"), wait)));
    }
    match policy.limits.features_per_day {
        None => Ok(None),
        Some(limit) => match gate.quota.held.remaining(name, limit, now) {
            Ok(n) => Ok(Some(n)),
            Err(wait) => {
                Err(Box::new(too_many(format!("agency {name} has taken its {limit} parcels for today"), wait)))
            }
        },
    }
}

/// The audit log's writer: requests put their entries in a shared batch and go on; a task
/// appends the batch to the chain. [`AuditLog::flush`] waits until everything recorded before it
/// is written (at shutdown, and for tests). A mutex over a vector rather than a channel: a
/// request takes one lock and wakes the writer only when the batch was empty, where a channel
/// send touched several shared counters and woke the writer's task.
#[derive(Debug)]
pub struct AuditLog {
    batch: Arc<Batch>,
    /// Whether the primary takes entries, and what waits in the spool.
    pub state: Arc<AuditState>,
}

/// The audit writer's view of the primary, and its spool, for requests, `/health` and
/// `/metrics`.
#[derive(Debug)]
pub struct AuditState {
    /// The last write to the primary failed: entries go to the spool, and answers wait until
    /// theirs are on disk there.
    pub primary_away: std::sync::atomic::AtomicBool,
    /// The spool could not be written either: data-returning requests are refused rather than
    /// answered unaudited.
    pub unrecordable: std::sync::atomic::AtomicBool,
    spool: crate::spool::Spool,
}

impl AuditState {
    /// Entries waiting in the spool.
    pub fn spooled(&self) -> usize {
        self.spool.depth()
    }

    pub fn away(&self) -> bool {
        self.primary_away.load(Ordering::Relaxed)
    }

    pub fn unrecordable(&self) -> bool {
        self.unrecordable.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
struct Batch {
    queued: std::sync::Mutex<Queued>,
    /// Rung when the first entry (or a flush) arrives in an empty batch.
    arrived: tokio::sync::Notify,
}

/// The entries recorded since the last batch was taken. An entry's strings and numbers go into
/// buffers of the batch, not into allocations of its own: what a request allocates, the request
/// frees, and the writer (on whichever thread) frees only its own. Under load, entries freed on
/// another thread than the one that made them cost the allocator about 4 µs of CPU a request
/// (five allocations an entry, measured with `perf` on point lookups).
#[derive(Debug, Default)]
struct Queued {
    entries: Vec<Recorded>,
    /// Each entry's method, endpoint and parameters, one after another.
    text: String,
    /// Each entry's personal-data versions, versions and communes, one after another.
    numbers: Vec<i64>,
    /// Flushes waiting for every entry queued before them (told whether those are on record:
    /// in the chain or in the spool).
    flushes: Vec<oneshot::Sender<bool>>,
}

/// An entry as recorded: where its text and numbers end in the batch's buffers (they start where
/// the entry before it ends).
#[derive(Debug)]
struct Recorded {
    at: chrono::DateTime<Utc>,
    caller: Arc<Caller>,
    status: u16,
    parcels: u64,
    /// The ends of the method, endpoint and parameters in [`Queued::text`].
    text: [usize; 3],
    /// The ends of the personal-data versions, versions and communes in [`Queued::numbers`].
    numbers: [usize; 3],
}

impl Queued {
    fn push(
        &mut self,
        caller: &Arc<Caller>,
        at: chrono::DateTime<Utc>,
        line: &RequestLine,
        status: u16,
        d: Disclosure,
    ) {
        let (parcels, personal, versions, communes) = d.into_parts();
        let mut text = [0; 3];
        for (end, part) in text.iter_mut().zip(line.parts()) {
            self.text.push_str(part);
            *end = self.text.len();
        }
        let mut numbers = [0; 3];
        self.numbers.extend_from_slice(&personal);
        numbers[0] = self.numbers.len();
        self.numbers.extend_from_slice(&versions);
        numbers[1] = self.numbers.len();
        self.numbers.extend(communes.iter().map(|&c| i64::from(c)));
        numbers[2] = self.numbers.len();
        self.entries.push(Recorded {
            at: AuditEvent::new_at(at),
            caller: Arc::clone(caller),
            status,
            parcels,
            text,
            numbers,
        });
    }

    /// Empties the batch, keeping its buffers (up to a bound: a burst's batch is not kept).
    fn clear(&mut self) {
        self.entries.clear();
        self.text.clear();
        self.numbers.clear();
        self.text.shrink_to(KEPT_TEXT);
        self.numbers.shrink_to(KEPT_TEXT / 8);
        self.entries.shrink_to(KEPT_ENTRIES);
    }

    /// The entries as the store takes them, made on the writer's side in `events` (its
    /// strings and vectors refilled, not made anew: a batch of thousands of entries made fresh
    /// each time left the allocator thousands of cold blocks for the requests to take next).
    /// Returns how many of `events` are this batch's.
    fn fill(&self, events: &mut Vec<AuditEvent>) -> usize {
        let (mut text_at, mut number_at) = (0, 0);
        for (i, e) in self.entries.iter().enumerate() {
            let [method, endpoint, params] = e.text.map(|end| {
                let part = &self.text[text_at..end];
                text_at = end;
                part
            });
            let [personal, versions, communes] = e.numbers.map(|end| {
                let part = &self.numbers[number_at..end];
                number_at = end;
                part
            });
            let on_record = &e.caller.on_record;
            if i == events.len() {
                events.push(AuditEvent {
                    at: e.at,
                    agency: Arc::clone(&on_record.agency),
                    key_id: Arc::clone(&on_record.key_id),
                    method: String::new(),
                    endpoint: String::new(),
                    params: String::new(),
                    purpose: Arc::clone(&on_record.purpose),
                    status: e.status,
                    parcels: e.parcels,
                    personal: Vec::new(),
                    versions: Vec::new(),
                    communes: Vec::new(),
                });
            }
            let event = &mut events[i];
            event.at = e.at;
            for (field, value) in [
                (&mut event.agency, &on_record.agency),
                (&mut event.key_id, &on_record.key_id),
                (&mut event.purpose, &on_record.purpose),
            ] {
                if !Arc::ptr_eq(field, value) {
                    *field = Arc::clone(value);
                }
            }
            for (field, value) in
                [(&mut event.method, method), (&mut event.endpoint, endpoint), (&mut event.params, params)]
            {
                field.clear();
                field.push_str(value);
            }
            event.status = e.status;
            event.parcels = e.parcels;
            event.personal.clear();
            event.personal.extend_from_slice(personal);
            event.versions.clear();
            event.versions.extend_from_slice(versions);
            event.communes.clear();
            event.communes.extend(communes.iter().map(|&c| u32::try_from(c).unwrap_or(u32::MAX)));
        }
        self.entries.len()
    }

    /// The entries as the store takes them, made anew (for tests).
    #[cfg(test)]
    fn events(&self) -> Vec<AuditEvent> {
        let mut events = Vec::new();
        self.fill(&mut events);
        events
    }
}

impl Batch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queued> {
        self.queued.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The bytes of entry text an emptied batch keeps room for: a batch of 50 ms at 50,000 lookups
/// a second (about 80 bytes of text an entry), and some.
const KEPT_TEXT: usize = 8 << 20;

/// The entries an emptied batch, and the writer's events, keep room for.
const KEPT_ENTRIES: usize = KEPT_TEXT / 256;

/// How long the writer lets entries gather before it writes them.
const AUDIT_LINGER: Duration = Duration::from_millis(50);

/// How long the writer waits for the primary to take a batch before it spools it.
const AUDIT_PATIENCE: Duration = Duration::from_secs(3);

/// Entries appended in one transaction at most.
const AUDIT_BATCH: usize = 10_000;

impl AuditLog {
    /// Starts the writer, and the drainer of `spool`, where entries the primary does not take
    /// wait (see [`crate::spool`]).
    fn start(store: AnyStore, spool: crate::spool::Spool) -> AuditLog {
        let batch = Arc::new(Batch::default());
        // What an earlier run left is drained first, in order.
        let state = Arc::new(AuditState {
            primary_away: std::sync::atomic::AtomicBool::new(spool.depth() > 0),
            unrecordable: std::sync::atomic::AtomicBool::new(false),
            spool,
        });
        let (queue, shared) = (Arc::clone(&batch), Arc::clone(&state));
        tokio::spawn(Drainer { store: store.clone(), state: Arc::clone(&shared) }.run());
        tokio::spawn(async move {
            let mut writer = Writer { store, state: shared, held: Vec::new() };
            // The batch taken last time, emptied: its buffers are the next batch's, so that a
            // batch does not grow its text from nothing (copies, and fresh pages) every time.
            let mut spare = Queued::default();
            let mut events = Vec::new();
            loop {
                // Wait for something, let more arrive for a moment (one transaction for many
                // entries: under load a commit a request would cost more than the requests),
                // then take the batch, swapped for an empty one in the lock (the requests wait
                // for a swap, not for a copy). Entries held for want of anywhere to put them
                // are tried again every second.
                let waited = if writer.held.is_empty() { Duration::from_secs(3600) } else { Duration::from_secs(1) };
                let _ = tokio::time::timeout(waited, queue.arrived.notified()).await;
                tokio::time::sleep(AUDIT_LINGER).await;
                let mut taken = std::mem::replace(&mut *queue.lock(), spare);
                let n = taken.fill(&mut events);
                let on_record = writer.write(&events[..n]).await;
                // A burst's entries are not kept for the next batch.
                events.truncate(KEPT_ENTRIES);
                // Every entry queued before these flushes was in the batch.
                for flush in taken.flushes.drain(..) {
                    let _ = flush.send(on_record);
                }
                taken.clear();
                spare = taken;
            }
        });
        AuditLog { batch, state }
    }
    fn record(
        &self,
        caller: &Arc<Caller>,
        at: chrono::DateTime<Utc>,
        line: &RequestLine,
        status: StatusCode,
        d: Disclosure,
    ) {
        let first = {
            let mut q = self.batch.lock();
            q.push(caller, at, line, status.as_u16(), d);
            q.entries.len() == 1
        };
        if first {
            self.batch.arrived.notify_one();
        }
    }

    /// Puts on record what a part of a streamed answer disclosed as it is sent (a page of the
    /// change feed's event stream): an entry of its own, as for a request to `uri`.
    pub fn record_streamed(&self, access: &Access, uri: &axum::http::Uri, d: Disclosure) {
        let line = RequestLine { method: axum::http::Method::GET, uri: uri.clone(), instead: None };
        self.record(&access.caller, Utc::now(), &line, StatusCode::OK, d);
    }

    /// Waits until every entry recorded before the call is on record: in the chain, or (while
    /// the primary is away) on disk in the spool. False when it could be neither.
    pub async fn flush(&self) -> bool {
        let (done, wait) = oneshot::channel();
        self.batch.lock().flushes.push(done);
        self.batch.arrived.notify_one();
        wait.await.unwrap_or(false)
    }
}

/// The audit writer's task: entries to the primary, or to the spool while it is away.
struct Writer {
    store: AnyStore,
    state: Arc<AuditState>,
    /// Entries neither the primary nor the spool took: written first next time (an entry is
    /// never dropped; the answers they record were refused, or left before the primary failed).
    held: Vec<AuditEvent>,
}

impl Writer {
    /// Puts `events` on record; true when they are (in the chain, or in the spool).
    async fn write(&mut self, events: &[AuditEvent]) -> bool {
        let held;
        let events = if self.held.is_empty() {
            events
        } else {
            let mut all = std::mem::take(&mut self.held);
            all.extend_from_slice(events);
            held = all;
            &held[..]
        };
        if self.state.away() || self.state.spooled() > 0 {
            // Behind what waits: to the spool (the drainer takes it to the primary).
            if self.put_in_spool(events) {
                return true;
            }
            // Not even the spool: perhaps the primary is back.
            return self.retry_primary().await;
        }
        for (i, chunk) in events.chunks(AUDIT_BATCH).enumerate() {
            if let Err(e) = append_patiently(&self.store, chunk).await {
                tracing::error!(error = %e, "cannot write the audit log to the primary: entries go to the spool until it answers");
                self.state.primary_away.store(true, Ordering::Relaxed);
                return self.put_in_spool(&events[i * AUDIT_BATCH..]);
            }
        }
        true
    }

    fn put_in_spool(&mut self, events: &[AuditEvent]) -> bool {
        let spool = &self.state.spool;
        if events.is_empty() {
            return true;
        }
        match spool.append(events) {
            Ok(()) => {
                self.state.unrecordable.store(false, Ordering::Relaxed);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, spool = %spool.path().display(), entries = events.len(),
                    "cannot write the audit spool either: refusing data until one of them takes entries");
                self.state.unrecordable.store(true, Ordering::Relaxed);
                self.held = events.to_vec();
                false
            }
        }
    }

    /// Writes the held entries straight to the primary; true when it took them all (it is then
    /// no longer away, and nothing is refused for want of a record).
    async fn retry_primary(&mut self) -> bool {
        let held = std::mem::take(&mut self.held);
        for (i, chunk) in held.chunks(AUDIT_BATCH).enumerate() {
            if append_patiently(&self.store, chunk).await.is_err() {
                self.held = held[i * AUDIT_BATCH..].to_vec();
                return false;
            }
        }
        self.state.unrecordable.store(false, Ordering::Relaxed);
        if self.state.spooled() == 0 {
            self.state.primary_away.store(false, Ordering::Relaxed);
        }
        true
    }
}

/// Appends to the chain in the primary, giving up after [`AUDIT_PATIENCE`]: a primary that
/// cannot be reached is otherwise waited for as long as the pool waits for a connection.
async fn append_patiently(store: &AnyStore, chunk: &[AuditEvent]) -> Result<(), String> {
    match tokio::time::timeout(AUDIT_PATIENCE, store.append_audit(chunk)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", AUDIT_PATIENCE.as_secs())),
    }
}

/// Takes what waits in the spool to the primary, in a task of its own: answers never wait for
/// a primary that does not answer, only for the spool's disk.
struct Drainer {
    store: AnyStore,
    state: Arc<AuditState>,
}

impl Drainer {
    async fn run(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.state.spooled() > 0 {
                self.drain().await;
            }
        }
    }

    /// Moves what waits in the spool into the chain, oldest first, while the primary takes it.
    async fn drain(&self) {
        let spool = &self.state.spool;
        let waiting = match spool.read() {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the audit spool");
                return;
            }
        };
        for chunk in waiting.chunks(AUDIT_BATCH) {
            if append_patiently(&self.store, chunk).await.is_err() {
                self.state.primary_away.store(true, Ordering::Relaxed);
                return;
            }
            if let Err(e) = spool.cut(chunk.len()) {
                // In the chain but still in the spool: stop, or the next drain repeats them.
                tracing::error!(error = %e, "cannot cut the audit spool after draining it");
                self.state.unrecordable.store(true, Ordering::Relaxed);
                return;
            }
        }
        // Drained: unless the writer spooled more meanwhile (the next tick takes them).
        if spool.depth() == 0 && self.state.primary_away.swap(false, Ordering::Relaxed) {
            tracing::info!("the primary takes audit entries again: the spool is drained");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_citizen_id_never_reaches_a_log_line() {
        assert_eq!(loggable_path("/holders/048185000123/parcels"), "/holders/{citizen_id}/parcels");
        assert_eq!(loggable_path("/holders/048185000123"), "/holders/{citizen_id}");
        assert_eq!(loggable_path("/holders/"), "/holders/{citizen_id}");
        assert_eq!(loggable_path("/parcels/at"), "/parcels/at");
    }

    /// Entries kept in the batch's shared buffers come out as the events they were: each its
    /// own text and numbers, none shifted into its neighbour's, empty parts included.
    #[test]
    fn entries_come_out_of_the_batch_as_recorded() {
        let caller = Arc::clone(&Access::nation(true).caller);
        let now = Utc::now();
        let mut queued = Queued::default();
        let line = |method: &str, uri: &str| RequestLine {
            method: method.parse().expect("a method"),
            uri: uri.parse().expect("a request target"),
            instead: None,
        };
        let lines = [
            line("GET", "/parcels/at?lon=108.2&lat=16.1"),
            line("HEAD", "/collections/parcels/export"),
            line("GET", "/?f=th%E1%BB%ADa&q=a%20b"),
        ];
        let disclosures = [
            Disclosure::of_parts(2, vec![7], vec![7, 9], vec![20227, 20194]),
            Disclosure::default(),
            Disclosure::of_parts(1, Vec::new(), vec![3], vec![20227]),
        ];
        for (i, (line, d)) in lines.iter().zip(disclosures.clone()).enumerate() {
            queued.push(&caller, now, line, 200 + i as u16, d);
        }
        let events = queued.events();
        assert_eq!(events.len(), 3);
        for (i, ((e, line), d)) in events.iter().zip(&lines).zip(disclosures).enumerate() {
            assert_eq!([e.method.as_str(), &e.endpoint, &e.params], line.parts());
            let (parcels, personal, versions, communes) = d.into_parts();
            assert_eq!(
                (e.parcels, &e.personal, &e.versions, &e.communes),
                (parcels, &personal.to_vec(), &versions.to_vec(), &communes.to_vec())
            );
            assert_eq!(e.status, 200 + i as u16);
            assert_eq!(e.at, AuditEvent::new_at(now));
            assert_eq!((&*e.agency, &*e.key_id), ("operator", "local"));
        }
    }
}
