//! Serving from a read replica (issue 22), against a real streaming standby of this machine's
//! cluster: a server reading from the standby loads and follows the change feed there, answers
//! an import made on the primary within a second of the standby replaying it, and writes its
//! audit entries to the primary. A standby given as the primary is refused with what to give.

use std::time::{Duration, Instant};

use landdb_store::{AccessStore, AnyStore, AuditQuery, DatabaseUrl};
use landdb_tests::http::{Setup, client, get_with, import_files, samples, server_with};
use landdb_tests::standby::Standby;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_a_standby_follows_the_primary_and_writes_only_there() {
    let standby = Standby::start().expect("a standby (tools/setup allows the replication connection)");
    let s =
        server_with(&[samples().join("20194.geojson")], Setup { read_ports: vec![standby.port], ..Setup::default() })
            .await;
    let primary_url = DatabaseUrl::parse(&s.db.url).expect("url");
    let standby_url = DatabaseUrl::parse(&standby.url_of(&s.db.url)).expect("url");

    // The standby is no primary: refused, saying what to give instead.
    let refused = AnyStore::open(&standby_url).await.expect_err("a standby opened as the primary");
    let said = refused.to_string();
    assert!(said.contains("standby") && said.contains("--read-database"), "{said}");

    let count = |doc: &serde_json::Value| doc["numberMatched"].as_u64().expect("numberMatched");
    let items = format!("{}/collections/parcels/items?limit=1", s.base);
    let (status, _, doc) = get_with(&client(), &items).await;
    assert_eq!(status, 200, "{doc}");
    let before = count(&doc);
    assert!(before > 800, "the first commune, loaded from the standby: {before}");

    // An import on the primary: the server on the standby answers it once replayed.
    let primary = AnyStore::open(&primary_url).await.expect("the primary");
    let started = Instant::now();
    import_files(&primary, &[samples().join("20197.geojson")]).await;
    let committed = started.elapsed();
    let after = loop {
        let (_, _, doc) = get_with(&client(), &items).await;
        if count(&doc) > before {
            break count(&doc);
        }
        assert!(started.elapsed() < committed + Duration::from_secs(10), "the new parcels never showed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seen = started.elapsed() - committed;
    assert!(after > before + 800, "the second commune too: {after}");
    assert!(seen < Duration::from_secs(2), "answered {seen:?} after the commit (replay included)");
    println!("new parcels answered {seen:?} after the primary committed them");

    // Health says reads come from a replica; the audit entries are on the primary.
    let (_, _, health) = get_with(&client(), &format!("{}/health", s.base)).await;
    assert!(health["replica"]["lag_seconds"].is_number(), "{health}");
    s.app.gate.audit.flush().await;
    let entries = primary.audit_entries(&AuditQuery { limit: 10_000, ..AuditQuery::default() }).await.expect("entries");
    assert!(
        entries.iter().filter(|e| e.event.endpoint == "/collections/parcels/items").count() >= 2,
        "the server's audit entries are on the primary: {}",
        entries.len()
    );
    drop(s);
    drop(standby);
}

/// The primary cut off from a server that reads from a standby, under load: lookups and history
/// (read from the standby) go on, every answer's audit entry waits in the spool and reaches the
/// chain when the primary is back, and the chain verifies with one entry for every answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_outage_stops_no_read_and_loses_no_audit_entry() {
    use landdb_access::{Area, Operation, Role};
    use landdb_tests::http::{agency, client_with, policy};
    let standby = Standby::start().expect("a standby");
    let proxy = landdb_tests::proxy::Proxy::start().await;
    let spool = std::env::temp_dir().join(format!("landdb-replica-spool-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&spool);
    let s = server_with(
        &[samples().join("20194.geojson")],
        Setup {
            store_port: Some(proxy.port),
            read_ports: vec![standby.port],
            audit_spool: Some(spool.clone()),
            ..Setup::default()
        },
    )
    .await;
    let mut notary = policy(Role::Reader, Area::Nation, false);
    notary.operations.insert(Operation::History);
    let reader = client_with(&agency(&s, "notary-haivan", Role::Reader, notary).await);
    let view = s.engine.snapshot();
    let asked: Vec<String> = view
        .parcels()
        .take(40)
        .flat_map(|p| {
            let point = landdb_model::national_id::interior_point(&p.geometry()).expect("a point");
            [
                format!("{}/parcels/at?lon={}&lat={}", s.base, point.x(), point.y()),
                format!("{}/collections/parcels/items/{}/history", s.base, p.version().0),
            ]
        })
        .collect();
    drop(view);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, reader) = (std::sync::Arc::clone(&stop), reader.clone());
        tokio::spawn(async move {
            let mut answered = std::collections::BTreeMap::<(bool, u16), usize>::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let url = &asked[i % asked.len()];
                i += 1;
                if let Ok(r) = reader.get(url).timeout(Duration::from_secs(30)).send().await {
                    *answered.entry((url.contains("/history"), r.status().as_u16())).or_default() += 1;
                    let _ = r.bytes().await;
                }
            }
            answered
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.stop();
    let started = Instant::now();
    loop {
        let (_, _, health) = get_with(&client(), &format!("{}/health", s.base)).await;
        if health["audit"]["primary"] == "away" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the primary never seen away: {health}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = landdb_api::spool::Spool::open(&spool).expect("spool").depth();
    proxy.start_again().await;
    let started = Instant::now();
    loop {
        let (_, _, health) = get_with(&client(), &format!("{}/health", s.base)).await;
        if health["audit"]["primary"] == "reachable" && health["audit"]["spool"] == "empty" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never drained: {health}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered = load.await.expect("the load");
    assert!(s.app.gate.audit.flush().await);
    assert!(during > 20, "answers given while the primary was away, spooled: {during}; {answered:?}");
    assert!(
        answered.iter().all(|((_, status), _)| *status == 200),
        "reads, history from the standby too, all answered: {answered:?}"
    );

    let primary = AnyStore::open(&DatabaseUrl::parse(&s.db.url).expect("url")).await.expect("the primary");
    primary.verify_audit(&mut |_| {}).await.expect("read").expect("the chain verifies");
    let entries = primary
        .audit_entries(&AuditQuery { agency: Some("notary-haivan".into()), limit: 1_000_000, ..AuditQuery::default() })
        .await
        .expect("entries");
    assert_eq!(entries.len(), answered.values().sum::<usize>(), "one entry for every answer: {answered:?}");
    let _ = std::fs::remove_file(&spool);
    drop(s);
    drop(standby);
}

/// Two standbys: reads go to the first; when it stops, to the second (it has replayed as far);
/// when that stops too, to the primary. History, read from the database, is asked for without
/// pause throughout and every request is answered: one that meets a stopped standby moves reads
/// and is read again where they go. An import on the primary is answered at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_move_from_a_stopped_standby_to_the_next_then_to_the_primary() {
    let first = Standby::start().expect("a standby");
    let second = Standby::start().expect("another standby");
    let s = server_with(
        &[samples().join("20194.geojson")],
        Setup { read_ports: vec![first.port, second.port], ..Setup::default() },
    )
    .await;
    let view = s.engine.snapshot();
    let version = view.parcels().next().expect("a parcel").version().0;
    drop(view);
    let history = format!("{}/collections/parcels/items/{version}/history", s.base);
    let health = format!("{}/health", s.base);
    let reading_from = || async { get_with(&client(), &health).await.2["replica"]["reading_from"].clone() };
    let until_reading_from = |want: &'static str| async move {
        let started = Instant::now();
        loop {
            let from = reading_from().await;
            if from == want {
                return started.elapsed();
            }
            assert!(started.elapsed() < Duration::from_secs(15), "reads never went to {want}: {from}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    until_reading_from("standby 1 of 2").await;
    assert_eq!(get_with(&client(), &history).await.0, 200);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asking = {
        let (stop, history) = (std::sync::Arc::clone(&stop), history.clone());
        tokio::spawn(async move {
            let mut answered = std::collections::BTreeMap::<u16, usize>::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                *answered.entry(get_with(&client(), &history).await.0).or_default() += 1;
            }
            answered
        })
    };

    first.stop().expect("the first standby stops");
    let moved = until_reading_from("standby 2 of 2").await;
    println!("reads moved to the second standby {moved:?} after the first stopped");
    let (status, _, doc) = get_with(&client(), &history).await;
    assert_eq!(status, 200, "history from the second standby: {doc}");

    second.stop().expect("the second standby stops");
    until_reading_from("primary").await;
    let (status, _, doc) = get_with(&client(), &history).await;
    assert_eq!(status, 200, "history from the primary: {doc}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered = asking.await.expect("the history load");
    assert_eq!(answered.keys().copied().collect::<Vec<_>>(), [200], "every history request answered: {answered:?}");

    let items = format!("{}/collections/parcels/items?limit=1", s.base);
    let before = get_with(&client(), &items).await.2["numberMatched"].as_u64().expect("count");
    let primary = AnyStore::open(&DatabaseUrl::parse(&s.db.url).expect("url")).await.expect("the primary");
    import_files(&primary, &[samples().join("20197.geojson")]).await;
    let started = Instant::now();
    while get_with(&client(), &items).await.2["numberMatched"].as_u64().expect("count") <= before {
        assert!(started.elapsed() < Duration::from_secs(10), "the import was never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(s);
}
