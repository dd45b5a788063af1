//! Webhooks, against a receiver that is down for a while, answers 500, or is slow: every parcel
//! of the subscriber's commune arrives at least once, signed so that Python's `hmac` verifies
//! it; what fails every try becomes a dead letter, three in a row pause the subscription, and a
//! replay delivers them; no delivery names a parcel outside the agency's area; another agency
//! cannot see the subscription; a callback to a host the operator did not allow is refused.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use landdb_access::{Area, Role};
use landdb_store::{BatchWriter, NewBatch, ParcelStore};
use landdb_tests::fixtures::parcel;
use landdb_tests::http::{agency, client, client_with, encoded, get_with, policy, samples, server};
use serde_json::Value;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Ok,
    Fail,
    Slow,
}

/// A delivery as received: its headers of note and its body.
#[derive(Debug, Clone)]
struct Delivery {
    signature: String,
    timestamp: String,
    id: String,
    body: String,
}

#[derive(Debug, Default)]
struct Receiver {
    mode: Option<Mode>,
    received: Vec<Delivery>,
}

/// Starts the receiver on `listener`.
fn receive(listener: tokio::net::TcpListener, state: Arc<Mutex<Receiver>>) {
    use axum::http::{HeaderMap, StatusCode};
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = Arc::clone(&state);
            async move {
                let mode = state.lock().expect("state").mode.unwrap_or(Mode::Ok);
                if mode == Mode::Slow {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                }
                if mode == Mode::Fail {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                state.lock().expect("state").received.push(Delivery {
                    signature: header("x-landdb-signature"),
                    timestamp: header("x-landdb-timestamp"),
                    id: header("x-landdb-delivery"),
                    body,
                });
                StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
}

/// A server with commune 20194, and a client of the reader agency `name` that sees it.
async fn reader_of_20194(name: &str) -> (landdb_tests::http::Server, reqwest::Client) {
    let s = server(&[samples().join("20194.geojson")]).await;
    let area = Area::Communes { codes: vec!["20194".into()] };
    let key = agency(&s, name, Role::Reader, policy(Role::Reader, area, false)).await;
    (s, client_with(&key))
}

/// A receiver listening on a port of its own: the port, and what it receives.
async fn listening() -> (u16, Arc<Mutex<Receiver>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let port = listener.local_addr().expect("address").port();
    let state = Arc::new(Mutex::new(Receiver::default()));
    receive(listener, Arc::clone(&state));
    (port, state)
}

/// The versions the receiver has been sent (added), and every event's commune.
fn received(state: &Mutex<Receiver>) -> (BTreeSet<i64>, BTreeSet<String>) {
    let (mut versions, mut communes) = (BTreeSet::new(), BTreeSet::new());
    for d in &state.lock().expect("state").received {
        let body: Value = serde_json::from_str(&d.body).expect("a JSON body");
        for c in body["changes"].as_array().expect("changes") {
            if let Some(commune) = c["feature"]["properties"]["commune"].as_str() {
                versions.insert(c["id"].as_i64().expect("id"));
                communes.insert(commune.to_owned());
            }
        }
    }
    (versions, communes)
}

/// Python's own hmac says whether `signature` signs `timestamp.body` under `secret`.
fn python_verifies(secret: &str, d: &Delivery) -> bool {
    let dir = std::env::temp_dir().join(format!("landdb-webhook-{}-{}", std::process::id(), d.id));
    std::fs::write(&dir, &d.body).expect("the body to a file");
    let script = "import hmac, hashlib, sys\n\
                  secret, timestamp, signature, path = sys.argv[1:5]\n\
                  body = open(path, 'rb').read()\n\
                  mac = hmac.new(bytes.fromhex(secret), timestamp.encode() + b'.' + body, hashlib.sha256).hexdigest()\n\
                  sys.exit(0 if hmac.compare_digest('sha256=' + mac, signature) else 1)\n";
    let ok = std::process::Command::new("python3")
        .args(["-c", script, secret, &d.timestamp, &d.signature])
        .arg(&dir)
        .status()
        .expect("python3")
        .success();
    let _ = std::fs::remove_file(&dir);
    ok
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("waited 30 s for {what}");
}

/// Asks for the subscription's dead letters to be delivered again: the answer.
async fn replay(client: &reqwest::Client, base: &str, id: &str) -> Value {
    let answer = client.post(format!("{base}/subscriptions/{id}/replay")).send().await.expect("replay");
    answer.json().await.expect("JSON")
}

/// Waits until the subscription has `n` dead letters.
async fn wait_for_dead_letters(client: &reqwest::Client, base: &str, id: &str, n: usize) {
    for _ in 0..300 {
        let (_, _, letters) = get_with(client, &format!("{base}/subscriptions/{id}/dead-letters")).await;
        if letters["dead_letters"].as_array().is_some_and(|l| l.len() >= n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("waited 30 s for {n} dead letters");
}

fn batch(name: &str) -> NewBatch {
    NewBatch { source: name.into(), province_code: Some("48".into()), content_hash: None, mode: "append".into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_survive_a_receiver_down_failing_and_slow() {
    let s = server(&[samples().join("20194.geojson"), samples().join("20197.geojson")]).await;
    let key = agency(
        &s,
        "tax-haivan",
        Role::Reader,
        policy(Role::Reader, Area::Communes { codes: vec!["20194".into()] }, false),
    )
    .await;
    let tax = client_with(&key);
    let own: BTreeSet<i64> = s
        .engine
        .snapshot()
        .in_commune(&landdb_model::CommuneCode::parse("20194").expect("code"))
        .iter()
        .map(|p| p.version().0)
        .collect();

    // A host the operator did not allow is refused.
    let refused = tax
        .post(format!("{}/subscriptions", s.base))
        .json(&serde_json::json!({ "callback": "http://10.1.2.3/hook" }))
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), 400);

    // The receiver's port, not yet listening: the receiver is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("address").port();
    let made = tax
        .post(format!("{}/subscriptions", s.base))
        .json(&serde_json::json!({ "callback": format!("http://127.0.0.1:{port}/hook") }))
        .send()
        .await
        .expect("answer");
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.expect("JSON");
    let (id, secret) =
        (made["id"].as_str().expect("id").to_owned(), made["secret"].as_str().expect("secret").to_owned());
    let (_, _, shown) = get_with(&tax, &format!("{}/subscriptions/{id}", s.base)).await;
    assert!(shown.get("secret").is_none(), "the secret is shown once: {shown}");
    let other = client_with(
        &agency(
            &s,
            "police",
            Role::Reader,
            policy(Role::Reader, Area::Communes { codes: vec!["20194".into()] }, false),
        )
        .await,
    );
    let (status, _, _) = get_with(&other, &format!("{}/subscriptions/{id}", s.base)).await;
    assert_eq!(status, 404, "another agency's subscription does not exist for it");

    // Down: the first delivery fails every try and becomes a dead letter.
    wait_for_dead_letters(&tax, &s.base, &id, 1).await;
    // Up: what comes next arrives, signed.
    let state = Arc::new(Mutex::new(Receiver::default()));
    receive(tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("the receiver's port"), Arc::clone(&state));
    let mut b = s.store.begin_batch(batch("while up")).await.expect("begin");
    let first = b
        .insert(&[parcel("20194", "906", "1", 108.21, 16.05), parcel("20197", "906", "2", 108.22, 16.05)])
        .await
        .expect("insert");
    b.commit(serde_json::json!({})).await.expect("commit");
    until("the new parcel delivered", || received(&state).0.contains(&first[0].0)).await;
    let d = state.lock().expect("state").received[0].clone();
    assert!(python_verifies(&secret, &d), "Python's hmac verifies the signature");
    let mut forged = d.clone();
    forged.body.push(' ');
    assert!(!python_verifies(&secret, &forged), "and refuses an edited body");

    // The snapshot that failed is replayed from the dead letters: then every parcel of the
    // commune has arrived, and nothing of the other.
    let replayed = replay(&tax, &s.base, &id).await;
    assert!(replayed["replayed"].as_u64() >= Some(1), "{replayed}");
    let (versions, communes) = received(&state);
    assert!(own.is_subset(&versions), "every parcel of the commune at least once");
    assert_eq!(communes, BTreeSet::from(["20194".to_owned()]), "nothing outside the area");
    assert!(!versions.contains(&first[1].0));

    // Slow: delivered all the same.
    state.lock().expect("state").mode = Some(Mode::Slow);
    let mut b = s.store.begin_batch(batch("slow")).await.expect("begin");
    let slow = b.insert(&[parcel("20194", "907", "1", 108.23, 16.05)]).await.expect("insert")[0];
    b.commit(serde_json::json!({})).await.expect("commit");
    until("a delivery to a slow receiver", || received(&state).0.contains(&slow.0)).await;

    // Failing: three dead letters in a row pause the subscription.
    state.lock().expect("state").mode = Some(Mode::Fail);
    for i in 0..3usize {
        let mut b = s.store.begin_batch(batch("failing")).await.expect("begin");
        b.insert(&[parcel("20194", "908", &i.to_string(), 108.24 + i as f64 * 0.001, 16.05)]).await.expect("insert");
        b.commit(serde_json::json!({})).await.expect("commit");
        let want = i + 2; // the one while down, then these
        wait_for_dead_letters(&tax, &s.base, &id, want).await;
    }
    let (_, _, paused) = get_with(&tax, &format!("{}/subscriptions/{id}", s.base)).await;
    assert_eq!(paused["state"], "paused", "{paused}");
    state.lock().expect("state").mode = Some(Mode::Ok);
    let replayed = replay(&tax, &s.base, &id).await;
    assert_eq!(replayed["replayed"], 3, "{replayed}");
    assert_eq!(replayed["state"], "active");
    let current: BTreeSet<i64> = s
        .store
        .current_page(None, 100_000)
        .await
        .expect("current")
        .iter()
        .filter(|v| v.parcel.key.commune.as_str() == "20194")
        .map(|v| v.id.0)
        .collect();
    assert!(current.is_subset(&received(&state).0), "every current parcel of the commune has arrived");
    // Every delivery is on record as the agency's.
    let (status, _, audit) = get_with(&client(), &format!("{}/admin/audit?agency=tax-haivan", s.base)).await;
    assert_eq!(status, 200, "{audit}");
    assert!(audit.to_string().contains(&format!("/subscriptions/{id}")), "deliveries are audited: {audit}");
}

/// A subscription's land-use filter: only parcels with one of its codes go out, all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_gets_only_the_land_use_it_asked_for() {
    let (s, office) = reader_of_20194("farm-office").await;
    let wanted: BTreeSet<i64> = s
        .engine
        .snapshot()
        .in_commune(&landdb_model::CommuneCode::parse("20194").expect("code"))
        .iter()
        .filter(|p| p.land_use().iter().any(|u| u.as_str() == "ODT"))
        .map(|p| p.version().0)
        .collect();
    assert!(!wanted.is_empty());
    let (port, state) = listening().await;
    let made = office
        .post(format!("{}/subscriptions", s.base))
        .json(&serde_json::json!({ "callback": format!("http://127.0.0.1:{port}/hook"), "land_use": ["ODT"] }))
        .send()
        .await
        .expect("answer");
    assert_eq!(made.status(), 201);
    until("every ODT parcel delivered", || received(&state).0 == wanted).await;
    for d in &state.lock().expect("state").received {
        let body: Value = serde_json::from_str(&d.body).expect("JSON");
        for c in body["changes"].as_array().expect("changes") {
            let uses = c["feature"]["properties"]["land_use"].to_string();
            assert!(uses.contains("\"ODT\""), "only what was asked for: {c}");
        }
    }
}

/// A receiver on an allowed host that redirects elsewhere is not followed (the server would
/// otherwise call wherever it is sent): the delivery fails and is kept as a dead letter. And an
/// agency may hold only so many subscriptions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_and_subscriptions_are_bounded() {
    use axum::http::{StatusCode, header};
    let (s, client) = reader_of_20194("redirected").await;
    // Where a redirect would lead: it must never be called.
    let (elsewhere, reached) = listening().await;
    let target = format!("http://127.0.0.1:{elsewhere}/hook");
    let redirecting = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let port = redirecting.local_addr().expect("address").port();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let target = target.clone();
            async move { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)]) }
        }),
    );
    tokio::spawn(async move { axum::serve(redirecting, app).await });
    let made: Value = client
        .post(format!("{}/subscriptions", s.base))
        .json(&serde_json::json!({ "callback": format!("http://127.0.0.1:{port}/hook") }))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    let id = made["id"].as_str().expect("id").to_owned();
    wait_for_dead_letters(&client, &s.base, &id, 1).await;
    assert!(reached.lock().expect("state").received.is_empty(), "the redirect was not followed");

    for n in 1..landdb_api::webhooks::MAX_SUBSCRIPTIONS {
        let answer = client
            .post(format!("{}/subscriptions", s.base))
            .json(&serde_json::json!({ "callback": format!("http://127.0.0.1:{port}/hook{n}") }))
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status(), 201);
    }
    let refused = client
        .post(format!("{}/subscriptions", s.base))
        .json(&serde_json::json!({ "callback": format!("http://127.0.0.1:{port}/one-too-many") }))
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), 400, "the most subscriptions an agency may have");
}

/// A subscription's CQL2 filter: it may name only what the agency may query (personal data it
/// does not see is as unknown as a made-up field) and not validity; what goes out is what
/// `items` answers with the same filter, all of it; and a parcel updated into something the
/// filter does not want leaves the receiver's copy (a `left` of the version it held).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_gets_what_its_cql2_filter_matches() {
    let (s, office) = reader_of_20194("big-parcels").await;
    let (port, state) = listening().await;
    let subscribe = |filter: &str| {
        office
            .post(format!("{}/subscriptions", s.base))
            .json(&serde_json::json!({ "callback": format!("http://127.0.0.1:{port}/hook"), "filter": filter }))
            .send()
    };
    for refused in
        ["address LIKE '%Hải%'", "valid_from > TIMESTAMP('2020-01-01T00:00:00Z')", "area_m2 >", "owner = 'x'"]
    {
        let answer = subscribe(refused).await.expect("answer");
        assert_eq!(answer.status(), 400, "{refused}");
        let body: Value = answer.json().await.expect("JSON");
        assert!(body["description"].as_str().is_some_and(|d| d.contains("filter")), "{refused}: {body}");
    }
    let filter = "area_m2 > 1000";
    let (status, _, items) =
        get_with(&office, &format!("{}/collections/parcels/items?limit=10000&filter={}", s.base, encoded(filter)))
            .await;
    assert_eq!(status, 200, "{items}");
    let wanted: BTreeSet<i64> =
        items["features"].as_array().expect("features").iter().map(|f| f["id"].as_i64().expect("id")).collect();
    assert!(!wanted.is_empty());
    let made = subscribe(filter).await.expect("answer");
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.expect("JSON");
    assert_eq!(made["filter"], filter);
    until("every parcel the filter matches delivered", || received(&state).0 == wanted).await;

    // One of them updated to a small parcel: its old version leaves the receiver's copy.
    let old = *wanted.iter().next().expect("one");
    let held = s.store.version(landdb_model::VersionId(old)).await.expect("store").expect("the version");
    let key = &held.parcel.key;
    // The fixture's parcel: about 400 m².
    let small = parcel(key.commune.as_str(), &key.sheet, &key.number, 108.2, 16.05);
    let mut b = s.store.begin_batch(batch("made small")).await.expect("begin");
    b.supersede(&small, &[landdb_model::VersionId(old)]).await.expect("supersede");
    b.commit(serde_json::json!({})).await.expect("commit");
    let left = || {
        state.lock().expect("state").received.iter().any(|d| {
            let body: Value = serde_json::from_str(&d.body).expect("JSON");
            body["changes"].as_array().expect("changes").iter().any(|c| c["kind"] == "left" && c["id"] == old)
        })
    };
    until("the old version left", left).await;
    assert!(!received(&state).0.iter().any(|v| !wanted.contains(v)), "nothing the filter does not want went out");
}
