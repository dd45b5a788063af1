//! A landdb server on a free port, over a fresh PostGIS with files imported, and the small HTTP
//! helpers the API and browser tests share.

use std::path::PathBuf;
use std::sync::Arc;

use landdb_api::AppState;
use landdb_engine::Engine;
use landdb_ingest::import::{Mode, import};
use landdb_ingest::pipeline::Options;
use landdb_ingest::profiles::FieldMapping;
use landdb_model::ReferenceData;
use landdb_store::{AnyStore, DatabaseUrl};
use serde_json::Value;

use crate::PostgisDb;

pub fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data-samples/geojson")
}

pub async fn import_files(store: &AnyStore, files: &[PathBuf]) {
    let reference = ReferenceData::embedded().expect("reference");
    let options = Options { crs_override: None, mapping: FieldMapping::builtin().expect("profile") };
    import(store, files, &reference, &options, Mode::Append, &|_| {}).await.expect("import");
}

/// A server on a free port over a fresh PostGIS with `files` imported; its base URL.
#[derive(Debug)]
pub struct Server {
    pub base: String,
    pub db: PostgisDb,
    pub store: AnyStore,
    pub engine: Arc<Engine>,
}

pub async fn server(files: &[PathBuf]) -> Server {
    let db = PostgisDb::create().await.expect("database");
    let store = AnyStore::open(&DatabaseUrl::parse(&db.url).expect("url")).await.expect("store");
    import_files(&store, files).await;
    let engine = Arc::new(Engine::load(&store).await.expect("engine"));
    tokio::spawn(landdb_api::follow_feed(Arc::clone(&engine), store.clone()));
    let state = Arc::new(AppState {
        engine: Arc::clone(&engine),
        store: store.clone(),
        reference: Arc::new(ReferenceData::embedded().expect("reference")),
        public_url: None,
        jobs: landdb_api::jobs::Jobs::new(std::env::temp_dir().join(format!("landdb-uploads-{}", std::process::id()))),
        metrics: landdb_api::metrics::Metrics::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, landdb_api::router(state)).await });
    Server { base, db, store, engine }
}

pub async fn get(url: &str) -> (u16, String, Value) {
    let response = reqwest::get(url).await.expect("request");
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
