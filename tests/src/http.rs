//! A landdb server on a free port, over a fresh PostGIS with files imported, and the small HTTP
//! helpers the API and browser tests share.

use std::path::PathBuf;
use std::sync::Arc;

use landdb_access::{Agency, Area, KeyRecord, Limits, Policy, Role};
use landdb_api::AppState;
use landdb_api::jobs::worker::WorkerCommand;
use landdb_api::jobs::{JobLimits, Jobs};
use landdb_engine::Engine;
use landdb_ingest::import::{Mode, import};
use landdb_ingest::pipeline::Options;
use landdb_ingest::profiles::FieldMapping;
use landdb_model::ReferenceData;
use landdb_store::{AccessStore, AnyStore, DatabaseUrl};
use serde_json::Value;

use crate::PostgisDb;

/// Numbers the test servers' spools in one process.
static SPOOLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data-samples/geojson")
}

pub async fn import_files(store: &AnyStore, files: &[PathBuf]) {
    let reference = ReferenceData::embedded().expect("reference");
    let options = Options { crs_override: None, mapping: FieldMapping::builtin().expect("profile"), area: None };
    import(store, files, &reference, &options, Mode::Append, &|_| {}).await.expect("import");
}

/// An upload that keeps an import worker busy for seconds: the three sample communes, each parcel
/// `copies` times under new parcel numbers, as one GeoJSON FeatureCollection.
pub fn many_parcels(copies: usize) -> Vec<u8> {
    let mut all = Vec::new();
    for commune in ["20194", "20197", "20200"] {
        let text = std::fs::read_to_string(samples().join(format!("{commune}.geojson"))).expect("sample");
        let doc: Value = serde_json::from_str(&text).expect("json");
        for feature in doc["features"].as_array().expect("features") {
            for copy in 0..copies {
                let mut f = feature.clone();
                let number = &mut f["properties"]["SoThuTuThua"];
                *number = match &*number {
                    Value::Number(n) => (n.as_u64().expect("a parcel number") * 10 + copy as u64).into(),
                    other => format!("{}{copy}", other.as_str().expect("a parcel number")).into(),
                };
                all.push(f);
            }
        }
    }
    serde_json::json!({ "type": "FeatureCollection", "features": all }).to_string().into_bytes()
}

/// A server on a free port over a fresh PostGIS with `files` imported; its base URL.
#[derive(Debug)]
pub struct Server {
    pub base: String,
    pub db: PostgisDb,
    pub store: AnyStore,
    pub engine: Arc<Engine>,
    pub app: Arc<AppState>,
}

/// The key the helpers send: the national operator's (public fields only, as most tests want),
/// put into every test database by [`server`]. Tests of the access rules make their own.
pub const OPERATOR_KEY: &str =
    "landdb_0000000000000000_00000000000000000000000000000000000000000000000000000000000000a1";

/// An agency with `policy`, and a new key for it (the token), in force on the server at once.
pub async fn agency(server: &Server, name: &str, role: Role, policy: Policy) -> String {
    let token = save_agency(&server.store, name, role, policy).await;
    server.app.gate.reload(&server.app.reference).await.expect("access rules reloaded");
    token
}

/// As [`agency`], or the reason the agency was refused.
pub async fn try_agency(server: &Server, name: &str, role: Role, policy: Policy) -> Result<String, String> {
    let reference = ReferenceData::embedded().expect("reference");
    let agency = Agency { name: name.to_owned(), title: name.to_owned(), role, policy, created_at: chrono::Utc::now() };
    landdb_api::admin::save_agency(&server.store, &reference, &agency).await.map_err(|e| e.to_string())?;
    Ok(agency.name)
}

async fn save_agency(store: &AnyStore, name: &str, role: Role, policy: Policy) -> String {
    let reference = ReferenceData::embedded().expect("reference");
    let agency = Agency { name: name.to_owned(), title: name.to_owned(), role, policy, created_at: chrono::Utc::now() };
    landdb_api::admin::save_agency(store, &reference, &agency).await.expect("agency saved");
    landdb_api::admin::new_key(store, name, None).await.expect("key").token
}

/// A policy over `area` with the role's operations and no limits.
pub fn policy(role: Role, area: Area, personal_data: bool) -> Policy {
    Policy {
        area,
        personal_data,
        operations: role.default_operations(),
        limits: Limits::default(),
        valid_from: None,
        valid_until: None,
        purpose: format!("test of the {} role", role.name()),
    }
}

/// How a test's server differs from the usual one.
#[derive(Debug, Default)]
pub struct Setup {
    /// Upload and worker limits.
    pub limits: JobLimits,
    /// The server (and its import workers) reach the database through this port of its host (a
    /// proxy a test can stop) instead of the database's own.
    pub store_port: Option<u16>,
    /// How long the engine may lag behind the feed before `/ready` is 503 (30 s unless given).
    pub max_feed_lag: Option<std::time::Duration>,
    /// No task keeps the engine following the feed (as when the follower has died).
    pub without_feed_follower: bool,
    /// Serve HTTPS with these files (the base URL is then `https://localhost:…`).
    pub tls: Option<landdb_api::tls::TlsFiles>,
    /// Take OAuth2 tokens of this identity provider.
    pub oauth: Option<landdb_api::oauth::OAuthSettings>,
    /// Write security events there.
    pub security_events: Option<landdb_api::security::Sink>,
    /// Seal right holders under this keyring (the user's default keyring otherwise).
    pub keyring: Option<PathBuf>,
    /// The audit spool's file (a fresh one in the temporary directory otherwise).
    pub audit_spool: Option<PathBuf>,
    /// Read parcels and the change feed from the databases of these ports of the host
    /// (streaming standbys, [`crate::standby::Standby`]), the first while it answers; write to
    /// the primary.
    pub read_ports: Vec<u16>,
}

pub async fn server(files: &[PathBuf]) -> Server {
    server_with(files, Setup::default()).await
}

/// The import worker the tests' servers start: `landdb-job-worker`, built beside the test.
pub fn job_worker() -> WorkerCommand {
    let exe = std::env::current_exe().expect("test executable");
    // target/debug/deps/<test> → target/debug/landdb-job-worker
    let dir = exe.parent().and_then(std::path::Path::parent).expect("target directory");
    WorkerCommand { program: dir.join("landdb-job-worker"), args: Vec::new() }
}

pub async fn server_with(files: &[PathBuf], setup: Setup) -> Server {
    let db = PostgisDb::create().await.expect("database");
    let keyring = match &setup.keyring {
        Some(path) => landdb_store::data_keys::Keyring::at(path).expect("keyring"),
        None => landdb_store::data_keys::Keyring::located().expect("keyring"),
    };
    let store =
        AnyStore::open_with(&DatabaseUrl::parse(&db.url).expect("url"), Arc::clone(&keyring)).await.expect("store");
    import_files(&store, files).await;
    save_agency(&store, "operator", Role::Operator, policy(Role::Operator, Area::Nation, false)).await;
    let now = chrono::Utc::now();
    let fixed = KeyRecord {
        id: "0000000000000000".to_owned(),
        agency: "operator".to_owned(),
        hash: landdb_access::key::hash(OPERATOR_KEY),
        created_at: now,
        expires_at: None,
        revoked_at: None,
    };
    store.put_key(&fixed).await.expect("operator key");
    let url = match setup.store_port {
        Some(port) => {
            let mut through = url::Url::parse(&db.url).expect("url");
            through.set_port(Some(port)).expect("a port");
            DatabaseUrl::parse(through.as_str()).expect("url")
        }
        None => DatabaseUrl::parse(&db.url).expect("url"),
    };
    let store =
        if setup.store_port.is_some() { AnyStore::open_with(&url, keyring).await.expect("store") } else { store };
    let store = if setup.read_ports.is_empty() {
        store
    } else {
        let reads: Vec<DatabaseUrl> = setup
            .read_ports
            .iter()
            .map(|port| {
                let mut replica = url::Url::parse(&db.url).expect("url");
                replica.set_port(Some(*port)).expect("a port");
                DatabaseUrl::parse(replica.as_str()).expect("url")
            })
            .collect();
        AnyStore::open_with_replicas(&url, &reads).await.expect("the store, reading from the replicas")
    };
    let (base, app, engine) = serve(store.clone(), url, setup).await;
    Server { base, db, store, engine, app }
}

/// Another server process's state over the same database as `of` (its own store connection,
/// engine, access gate and port), as a second `landdb serve` behind a load balancer would be.
#[derive(Debug)]
pub struct Replica {
    pub base: String,
    pub app: Arc<AppState>,
}

pub async fn replica(of: &Server) -> Replica {
    let url = DatabaseUrl::parse(&of.db.url).expect("url");
    let store = AnyStore::open_with(&url, Arc::clone(of.store.keyring())).await.expect("store");
    let (base, app, _) = serve(store, url, Setup::default()).await;
    Replica { base, app }
}

/// Serves `store` (at `url`, for its import workers) on a free port: its base URL, the server's
/// state and its engine.
async fn serve(store: AnyStore, url: DatabaseUrl, setup: Setup) -> (String, Arc<AppState>, Arc<Engine>) {
    let reference = ReferenceData::embedded().expect("reference");
    // Every test server has a spool of its own: audit entries wait there while the store is away.
    let spool = std::env::temp_dir().join(format!(
        "landdb-audit-spool-{}-{}.jsonl",
        std::process::id(),
        SPOOLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&spool);
    let spool = setup.audit_spool.clone().unwrap_or(spool);
    let spool = landdb_api::spool::Spool::open(&spool).expect("the audit spool");
    let gate = landdb_api::access::Gate::load(&store, &reference, spool).await.expect("access rules");
    let engine = Arc::new(Engine::load(&store).await.expect("engine"));
    if !setup.without_feed_follower {
        tokio::spawn(landdb_api::follow_feed(Arc::clone(&engine), store.clone()));
    }
    let jobs = Jobs::new(&std::env::temp_dir().join("landdb-jobs"), job_worker(), None, setup.limits).expect("jobs");
    let state = Arc::new(AppState {
        sources: landdb_api::scope::Sources::new(Arc::clone(&engine), store.clone()).taking_uploads(url),
        reference: Arc::new(reference),
        public_url: None,
        jobs,
        metrics: landdb_api::metrics::Metrics::default(),
        gate,
        health: landdb_api::health::Health::new(setup.max_feed_lag.unwrap_or(std::time::Duration::from_secs(30))),
        // The tests' receivers listen on the loopback; deliveries are tried again quickly.
        webhooks: landdb_api::webhooks::Webhooks {
            allowed_hosts: vec!["127.0.0.1".to_owned()],
            backoff: vec![std::time::Duration::from_millis(50), std::time::Duration::from_millis(100)],
        },
        security: match setup.security_events {
            Some(sink) => landdb_api::security::SecurityEvents::to(sink).await.expect("a security event sink"),
            None => landdb_api::security::SecurityEvents::off(),
        },
        oauth: match setup.oauth {
            Some(settings) => {
                Some(landdb_api::oauth::OAuth::new(settings).await.expect("the identity provider's keys"))
            }
            None => None,
        },
    });
    tokio::spawn(landdb_api::webhooks::deliver::run(Arc::clone(&state)));
    tokio::spawn(landdb_api::access::follow_access(Arc::clone(&state)));
    tokio::spawn(landdb_api::health::watch(Arc::clone(&state)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let base = match setup.tls {
        Some(_) => format!("https://localhost:{port}"),
        None => format!("http://127.0.0.1:{port}"),
    };
    let app = Arc::clone(&state);
    let router = landdb_api::router(state);
    tokio::spawn(landdb_api::tls::serve(listener, router, setup.tls, std::future::pending()));
    (base, app, engine)
}

/// `raw` as a query parameter's value.
pub fn encoded(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}

/// A client that sends [`OPERATOR_KEY`].
pub fn client() -> reqwest::Client {
    client_with(OPERATOR_KEY)
}

/// A client that sends `key`.
pub fn client_with(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).expect("header"),
    );
    reqwest::Client::builder().default_headers(headers).build().expect("client")
}

/// GET with [`OPERATOR_KEY`]: status, media type, body (JSON when it parses).
pub async fn get(url: &str) -> (u16, String, Value) {
    get_with(&client(), url).await
}

pub async fn get_with(client: &reqwest::Client, url: &str) -> (u16, String, Value) {
    let response = client.get(url).send().await.expect("request");
    let status = response.status().as_u16();
    let media = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, media, body)
}

pub fn link<'a>(doc: &'a Value, rel: &str) -> Option<&'a str> {
    doc["links"].as_array()?.iter().find(|l| l["rel"] == rel).and_then(|l| l["href"].as_str())
}

pub fn versions(doc: &Value) -> Vec<i64> {
    doc["features"].as_array().expect("features").iter().map(|f| f["id"].as_i64().expect("id")).collect()
}
