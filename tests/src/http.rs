//! A landdb server on a free port, over a fresh PostGIS with files imported, and the small HTTP
//! helpers the API and browser tests share.

use std::path::PathBuf;
use std::sync::Arc;

use landdb_access::{Agency, Area, KeyRecord, Limits, Policy, Role};
use landdb_api::AppState;
use landdb_engine::Engine;
use landdb_ingest::import::{Mode, import};
use landdb_ingest::pipeline::Options;
use landdb_ingest::profiles::FieldMapping;
use landdb_model::ReferenceData;
use landdb_store::{AccessStore, AnyStore, DatabaseUrl};
use serde_json::Value;

use crate::PostgisDb;

pub fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data-samples/geojson")
}

pub async fn import_files(store: &AnyStore, files: &[PathBuf]) {
    let reference = ReferenceData::embedded().expect("reference");
    let options = Options { crs_override: None, mapping: FieldMapping::builtin().expect("profile"), area: None };
    import(store, files, &reference, &options, Mode::Append, &|_| {}).await.expect("import");
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

pub async fn server(files: &[PathBuf]) -> Server {
    let db = PostgisDb::create().await.expect("database");
    let store = AnyStore::open(&DatabaseUrl::parse(&db.url).expect("url")).await.expect("store");
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
    let (base, app, engine) = serve(store.clone()).await;
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
    let store = AnyStore::open(&DatabaseUrl::parse(&of.db.url).expect("url")).await.expect("store");
    let (base, app, _) = serve(store).await;
    Replica { base, app }
}

/// Serves `store` on a free port: its base URL, the server's state and its engine.
async fn serve(store: AnyStore) -> (String, Arc<AppState>, Arc<Engine>) {
    let reference = ReferenceData::embedded().expect("reference");
    let gate = landdb_api::access::Gate::load(&store, &reference).await.expect("access rules");
    let engine = Arc::new(Engine::load(&store).await.expect("engine"));
    tokio::spawn(landdb_api::follow_feed(Arc::clone(&engine), store.clone()));
    let state = Arc::new(AppState {
        sources: landdb_api::scope::Sources::new(Arc::clone(&engine), store.clone()),
        reference: Arc::new(reference),
        public_url: None,
        jobs: landdb_api::jobs::Jobs::new(std::env::temp_dir().join(format!("landdb-uploads-{}", std::process::id()))),
        metrics: landdb_api::metrics::Metrics::default(),
        gate,
    });
    tokio::spawn(landdb_api::access::follow_access(Arc::clone(&state)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let app = Arc::clone(&state);
    tokio::spawn(async move { axum::serve(listener, landdb_api::router(state)).await });
    (base, app, engine)
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
