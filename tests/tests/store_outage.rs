//! Health that tells the truth (issue 18): a server whose database goes away says so. `/ready` is
//! 503 with the reason, `/health` reports the store unreachable, routes that need the store answer
//! 503 at once (not 500, not after a wait) while point lookups go on from the engine, an import
//! that loses the database fails as the store's failure (never the file's), and everything is back
//! when the database is.
//!
//! The database is really unreachable: the server reaches PostgreSQL through a TCP proxy that the
//! test stops (every connection cut, new ones refused) and starts again on the same port.

use std::sync::Arc;
use std::time::Duration;

use landdb_store::{AnyStore, DatabaseUrl, ParcelStore};
use landdb_tests::http::{Server, Setup, client, samples, server_with};
use landdb_tests::proxy::Proxy;
use serde_json::Value;

async fn get(url: &str) -> (u16, Value) {
    let response = client().get(url).timeout(Duration::from_secs(30)).send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Polls `path` until its status is `want` (within `within`); the last answer.
async fn until(s: &Server, path: &str, want: u16, within: Duration) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (status, body) = get(&format!("{}{path}", s.base)).await;
        if status == want {
            return body;
        }
        assert!(started.elapsed() < within, "{path} still {status} after {within:?}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_says_when_its_database_is_away_and_recovers() {
    let proxy = Proxy::start().await;
    let s = server_with(&[samples().join("20194.geojson")], Setup { store_port: Some(proxy.port), ..Setup::default() })
        .await;
    let view = s.engine.snapshot();
    let parcel = view.parcels().next().expect("a parcel");
    let version = parcel.version().0;
    let inside = landdb_model::national_id::interior_point(&parcel.geometry()).expect("interior");
    drop(view);
    let lookup = format!("/parcels/at?lon={}&lat={}", inside.x(), inside.y());
    let history = format!("/collections/parcels/items/{version}/history");

    let ready = until(&s, "/ready", 200, Duration::from_secs(10)).await;
    assert_eq!(ready, serde_json::json!({ "ready": true }));
    let (_, health) = get(&format!("{}/health", s.base)).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["store"]["reachable"], true, "{health}");
    assert_eq!(get(&format!("{}{history}", s.base)).await.0, 200);

    proxy.stop();
    let not_ready = until(&s, "/ready", 503, Duration::from_secs(10)).await;
    assert_eq!(not_ready["ready"], false);
    assert!(not_ready["reason"].as_str().is_some_and(|r| r.contains("the store has been unreachable")), "{not_ready}");
    let (status, health) = get(&format!("{}/health", s.base)).await;
    assert_eq!(status, 200, "the process lives: {health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["store"]["reachable"], false, "{health}");
    assert!(health["jobs"]["running"].is_number() && health["feed"]["lag_seconds"].is_number(), "{health}");
    let asked = std::time::Instant::now();
    let (status, body) = get(&format!("{}{history}", s.base)).await;
    assert_eq!(status, 503, "{body}");
    assert!(asked.elapsed() < Duration::from_secs(2), "answered at once, not after a wait: {:?}", asked.elapsed());
    assert!(body["description"].as_str().is_some_and(|d| d.contains("database is unavailable")), "{body}");
    let (status, found) = get(&format!("{}{lookup}", s.base)).await;
    assert_eq!(status, 200, "point lookups go on from the engine: {found}");
    assert_eq!(found["features"].as_array().map(Vec::len), Some(1), "{found}");

    // An upload while the database is away is refused before its body is read, as the store's
    // failure, not the file's.
    let upload = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(br#"{"type":"FeatureCollection","features":[]}"#.to_vec())
            .file_name("20197.geojson"),
    );
    let response = client().post(format!("{}/jobs", s.base)).multipart(upload).send().await.expect("post");
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().get("retry-after").is_some());
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "StoreUnavailable", "{body}");

    proxy.start_again().await;
    until(&s, "/ready", 200, Duration::from_secs(20)).await;
    until(&s, &history, 200, Duration::from_secs(20)).await;
    let (_, health) = get(&format!("{}/health", s.base)).await;
    assert_eq!(health["store"]["reachable"], true, "{health}");
}

/// The database lost in the middle of an import: the job fails as the store's failure (not as
/// "cannot open" the file), nothing was committed, and once the database is back the server is
/// ready and the same upload imports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_lost_during_an_import_is_the_stores_failure() {
    let proxy = Proxy::start().await;
    let s = server_with(&[samples().join("20194.geojson")], Setup { store_port: Some(proxy.port), ..Setup::default() })
        .await;
    let direct = AnyStore::open(&DatabaseUrl::parse(&s.db.url).expect("url")).await.expect("store");
    let head = direct.feed_head().await.expect("head");
    let upload = landdb_tests::http::many_parcels(5);
    let submit = || {
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(upload.clone()).file_name("nhiều thửa.geojson"));
        client().post(format!("{}/jobs", s.base)).multipart(form).send()
    };
    let response = submit().await.expect("post");
    assert_eq!(response.status().as_u16(), 202);
    let id = response.json::<Value>().await.expect("job")["id"].as_str().expect("id").to_owned();
    // Cut while the worker reads and loads.
    loading(&s, &id).await;
    proxy.stop();
    let job = finished(&s, &id).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["cause"], "store", "{job}");
    assert_eq!(job["attempts"], 3, "tried again while the store stayed away: {job}");
    let error = job["error"].as_str().expect("error");
    assert!(error.contains("the store became unavailable during the import"), "{error}");
    assert!(!error.contains("cannot open") && !error.contains("nhiều thửa"), "not the file's fault: {error}");
    assert_eq!(direct.feed_head().await.expect("head"), head, "nothing committed");

    proxy.start_again().await;
    until(&s, "/ready", 200, Duration::from_secs(20)).await;
    let response = submit().await.expect("post");
    assert_eq!(response.status().as_u16(), 202);
    let id = response.json::<Value>().await.expect("job")["id"].as_str().expect("id").to_owned();
    let job = finished(&s, &id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
}

/// The database away for a moment in the middle of an import: the job is tried again, and the
/// upload imports once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_is_tried_again_when_the_database_comes_back() {
    let proxy = Proxy::start().await;
    let s = server_with(&[samples().join("20194.geojson")], Setup { store_port: Some(proxy.port), ..Setup::default() })
        .await;
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(landdb_tests::http::many_parcels(5)).file_name("lại.geojson"));
    let response = client().post(format!("{}/jobs", s.base)).multipart(form).send().await.expect("post");
    assert_eq!(response.status().as_u16(), 202);
    let id = response.json::<Value>().await.expect("job")["id"].as_str().expect("id").to_owned();
    loading(&s, &id).await;
    proxy.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.start_again().await;
    let job = finished(&s, &id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(job["batch"]["already_imported"], false, "{job}");
}

/// Waits until job `id`'s worker has read records (and is loading them).
async fn loading(s: &Server, id: &str) {
    let started = std::time::Instant::now();
    loop {
        let (_, job) = get(&format!("{}/jobs/{id}", s.base)).await;
        assert_eq!(job["state"], "running", "the job ended before the cut: {job}");
        if job["records_read"].as_u64().is_some_and(|n| n > 0) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn finished(s: &Server, id: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (_, job) = get(&format!("{}/jobs/{id}", s.base)).await;
        if job["state"] == "failed" || job["state"] == "succeeded" {
            return job;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An engine that does not follow the feed (its follower gone) is reported behind, and the server
/// not ready, once it has been behind longer than the threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_behind_the_feed_is_not_ready() {
    let s = server_with(
        &[samples().join("20194.geojson")],
        Setup { max_feed_lag: Some(Duration::from_secs(1)), without_feed_follower: true, ..Setup::default() },
    )
    .await;
    until(&s, "/ready", 200, Duration::from_secs(10)).await;
    landdb_tests::http::import_files(&s.store, &[samples().join("20197.geojson")]).await;
    let not_ready = until(&s, "/ready", 503, Duration::from_secs(10)).await;
    let reason = not_ready["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("behind the store's change feed") && reason.contains("more than 1 s"), "{not_ready}");
    let (_, health) = get(&format!("{}/health", s.base)).await;
    assert!(health["feed"]["lag_seconds"].as_f64().is_some_and(|lag| lag >= 1.0), "{health}");
    assert_eq!(health["store"]["reachable"], true, "{health}");

    // Caught up, ready again.
    s.engine.follow(&s.store).await.expect("follow");
    until(&s, "/ready", 200, Duration::from_secs(10)).await;
}

/// The primary away under load (issue 22): point lookups go on from the engine, and no answer
/// leaves without its audit entry. While the primary is away, entries are fsynced into the
/// server's spool before their answers leave; when it is back they are drained into the chain in
/// order. Afterwards the chain verifies, and it holds one entry for every answer the agency got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_leaves_without_its_audit_entry_while_the_primary_is_away() {
    let (proxy, spool, s, reader) = server_behind_a_proxy("police-haivan").await;
    let view = s.engine.snapshot();
    let points: Vec<(f64, f64)> = view
        .parcels()
        .take(50)
        .filter_map(|p| landdb_model::national_id::interior_point(&p.geometry()))
        .map(|p| (p.x(), p.y()))
        .collect();
    drop(view);

    // Lookups all along: each answer counted, by status.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, base, reader) = (Arc::clone(&stop), s.base.clone(), reader.clone());
        tokio::spawn(async move {
            let mut answered: std::collections::BTreeMap<u16, usize> = std::collections::BTreeMap::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (lon, lat) = points[i % points.len()];
                i += 1;
                let url = format!("{base}/parcels/at?lon={lon}&lat={lat}");
                if let Ok(r) = reader.get(&url).timeout(Duration::from_secs(30)).send().await {
                    *answered.entry(r.status().as_u16()).or_default() += 1;
                    let _ = r.bytes().await;
                }
            }
            answered
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.stop();
    let health = loop {
        let (_, health) = get(&format!("{}/health", s.base)).await;
        if health["audit"]["primary"] == "away" {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health["audit"]["recording"], true, "the spool takes entries: {health}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = landdb_api::spool::Spool::open(&spool).expect("spool").depth();
    assert!(waiting > 10, "answers were given and spooled while the primary was away ({waiting})");
    proxy.start_again().await;
    let started = std::time::Instant::now();
    loop {
        let (_, health) = get(&format!("{}/health", s.base)).await;
        if health["audit"]["primary"] == "reachable" && health["audit"]["spool"] == "empty" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the spool was never drained: {health}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered = load.await.expect("the load");
    assert!(s.app.gate.audit.flush().await, "the last entries on record");

    let total: usize = answered.values().sum();
    assert_eq!(verified_entries(&s, "police-haivan").await, total, "one entry for every answer: {answered:?}");
    assert!(
        answered.get(&200).copied().unwrap_or(0) > waiting,
        "lookups went on while the primary was away: {answered:?}"
    );
    let _ = std::fs::remove_file(&spool);
}

/// Neither the primary nor the spool takes entries (the spool's file made a directory): audited
/// requests are refused with 503 `AuditUnavailable` rather than answered unaudited, the refusals
/// are held and put on record once the primary is back, and answers resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_answered_when_no_audit_entry_can_be_written() {
    let (proxy, spool, s, reader) = server_behind_a_proxy("court-haivan").await;
    let view = s.engine.snapshot();
    let p = landdb_model::national_id::interior_point(&view.parcels().next().expect("a parcel").geometry())
        .expect("a point");
    drop(view);
    let url = format!("{}/parcels/at?lon={}&lat={}", s.base, p.x(), p.y());
    std::fs::create_dir_all(&spool).expect("the spool's place taken by a directory");
    proxy.stop();
    let mut answered = std::collections::BTreeMap::<u16, usize>::new();
    let mut refused_since = None;
    let started = std::time::Instant::now();
    // Until the writer finds the primary gone (answers before that were recorded in memory,
    // held), then on: nothing but refusals.
    while started.elapsed() < Duration::from_secs(20)
        && refused_since.is_none_or(|_| answered.get(&503).copied().unwrap_or(0) < 50)
    {
        let r = reader.get(&url).send().await.expect("an answer");
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or_default();
        *answered.entry(status).or_default() += 1;
        if status == 503 {
            assert_eq!(body["code"], "AuditUnavailable", "{body}");
            refused_since.get_or_insert(answered.values().sum::<usize>());
        } else if refused_since.is_some() {
            panic!("answered {status} after the audit log stopped taking entries: {answered:?}");
        }
    }
    assert!(refused_since.is_some(), "refused while no entry could be written: {answered:?}");
    let (_, health) = get(&format!("{}/health", s.base)).await;
    assert_eq!(health["audit"]["recording"], false, "{health}");

    proxy.start_again().await;
    let started = std::time::Instant::now();
    loop {
        let r = reader.get(&url).send().await.expect("an answer");
        *answered.entry(r.status().as_u16()).or_default() += 1;
        if r.status() == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never answered again: {answered:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(s.app.gate.audit.flush().await);
    // Requests refused by the enforcement point before the writer failed have no entry to hold;
    // every answer that went through (200, or 503 after its entry could not be put anywhere) does.
    let through = verified_entries(&s, "court-haivan").await;
    assert!(through >= answered.get(&200).copied().unwrap_or(0), "{through} entries for {answered:?}");
    let _ = std::fs::remove_dir_all(&spool);
}

/// A server that reaches its database through a proxy the test can stop, its audit spool at a
/// path of the test's (nothing there yet), and a reader agency `agency` of the whole country:
/// the proxy, the spool's path, the server and the agency's client.
async fn server_behind_a_proxy(agency: &str) -> (Proxy, std::path::PathBuf, Server, reqwest::Client) {
    use landdb_access::{Area, Role};
    let proxy = Proxy::start().await;
    let spool = std::env::temp_dir().join(format!("landdb-spool-{agency}-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&spool);
    let _ = std::fs::remove_dir_all(&spool);
    let s = server_with(
        &[samples().join("20194.geojson")],
        Setup { store_port: Some(proxy.port), audit_spool: Some(spool.clone()), ..Setup::default() },
    )
    .await;
    let policy = landdb_tests::http::policy(Role::Reader, Area::Nation, false);
    let token = landdb_tests::http::agency(&s, agency, Role::Reader, policy).await;
    (proxy, spool, s, landdb_tests::http::client_with(&token))
}

/// The audit chain verified straight in PostgreSQL (past the proxy), and how many of its
/// entries are `agency`'s.
async fn verified_entries(s: &Server, agency: &str) -> usize {
    use landdb_store::{AccessStore, AuditQuery};
    let store = AnyStore::open(&DatabaseUrl::parse(&s.db.url).expect("url")).await.expect("store");
    store.verify_audit(&mut |_| {}).await.expect("read").expect("the chain verifies");
    let query = AuditQuery { agency: Some(agency.into()), limit: 1_000_000, ..AuditQuery::default() };
    store.audit_entries(&query).await.expect("entries").len()
}
