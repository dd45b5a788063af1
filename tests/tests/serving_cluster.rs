//! Issue 22 judged as an operator would run it: a primary cluster of the test's own, a streaming
//! standby made from it with `pg_basebackup -R`, two `landdb serve` processes reading from the
//! standby and one from the primary, all writing to the primary. An import on the primary is
//! answered by every process within a second (plus the standby's replay); the primary is then
//! stopped for 30 s under load: every read is still answered, none unaudited, and after the
//! primary returns `landdb audit verify` finds the chain intact with one entry for every answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use landdb_store::{AnyStore, AuditQuery, DatabaseUrl};
use landdb_tests::http::{client_with, get_with, samples};
use landdb_tests::process::{Serving, landdb};
use landdb_tests::standby::{Cluster, Standby};
use sqlx::Connection;

const AGENCY: &str = "cadastre-survey";

/// The number of parcels a server answers for.
async fn matched(c: &reqwest::Client, base: &str) -> u64 {
    let (status, _, doc) = get_with(c, &format!("{base}/collections/parcels/items?limit=1")).await;
    assert_eq!(status, 200, "{doc}");
    doc["numberMatched"].as_u64().expect("numberMatched")
}

/// The change feed's head in the database at `url`.
async fn feed_head(url: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("a connection");
    sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM parcel_change").fetch_one(&mut conn).await.expect("the head")
}

/// Parcels a server answers for, each with a point inside it: what the load asks about.
async fn parcels(c: &reqwest::Client, base: &str) -> Vec<(i64, f64, f64)> {
    let (status, _, doc) = get_with(c, &format!("{base}/collections/parcels/items?limit=60")).await;
    assert_eq!(status, 200, "{doc}");
    doc["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| {
            let geometry: geojson::Geometry = serde_json::from_value(f["geometry"].clone()).expect("a geometry");
            let shape: geo::Geometry<f64> = geometry.try_into().expect("a polygon");
            let geo::Geometry::MultiPolygon(shape) = shape else { panic!("parcels are multipolygons") };
            let p = landdb_model::national_id::interior_point(&shape).expect("a point");
            (f["id"].as_i64().expect("an id"), p.x(), p.y())
        })
        .collect()
}

/// Asks `base` which parcel is at each of `parcels`' points (answered from memory) and, for a
/// server reading from the standby, every third time for a parcel's history (read from the
/// standby's database), until told to stop: how many answers of each status it had.
async fn load(
    c: reqwest::Client,
    base: String,
    parcels: Vec<(i64, f64, f64)>,
    history: bool,
    stop: Arc<AtomicBool>,
) -> BTreeMap<u16, usize> {
    let mut answered = BTreeMap::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let (id, lon, lat) = parcels[i % parcels.len()];
        i += 1;
        let url = if history && i % 3 == 0 {
            format!("{base}/collections/parcels/items/{id}/history")
        } else {
            format!("{base}/parcels/at?lon={lon}&lat={lat}")
        };
        let r = c.get(&url).timeout(Duration::from_secs(60)).send().await.expect("an answer");
        *answered.entry(r.status().as_u16()).or_default() += 1;
        let _ = r.bytes().await;
    }
    answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_on_a_primary_and_its_standby_ride_out_a_primary_stop_with_every_answer_audited() {
    let primary = Cluster::start().expect("a primary cluster (initdb, as the postgres user)");
    let dir = std::env::temp_dir().join(format!("landdb-serving-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    let keys = dir.join("data.keys").display().to_string();
    let url = primary.url();
    let on_primary = |args: &[&str]| {
        let mut all = vec!["--database", url.as_str(), "--data-keys", keys.as_str()];
        all.extend_from_slice(args);
        landdb(&all)
    };
    let first = samples().join("20194.geojson").display().to_string();
    on_primary(&["import", &first]);
    on_primary(&[
        "agency",
        "add",
        AGENCY,
        "--title",
        "Cadastral survey",
        "--role",
        "reader",
        "--nation",
        "--operations",
        "lookup,items,history",
        "--purpose",
        "boundary surveys",
    ]);
    let key = on_primary(&["key", "create", AGENCY]).lines().last().expect("the key").trim().to_owned();
    let standby = Standby::of(&primary).expect("a standby of the primary");
    let standby_url = standby.url_of(&url);

    let servers = {
        let mut servers = Vec::new();
        for (name, read) in [("a", Some(&standby_url)), ("b", Some(&standby_url)), ("c", None)] {
            let spool = dir.join(format!("spool-{name}.jsonl")).display().to_string();
            let jobs = dir.join(format!("jobs-{name}")).display().to_string();
            let mut args =
                vec!["--database", &url, "--data-keys", &keys, "serve", "--audit-spool", &spool, "--jobs-dir", &jobs];
            if let Some(read) = read {
                args.extend(["--read-database", read.as_str()]);
            }
            servers.push((Serving::start(&args).await, read.is_some()));
        }
        servers
    };
    let c = client_with(&key);
    let before = matched(&c, &servers[2].0.base).await;
    for (s, _) in &servers {
        assert_eq!(matched(&c, &s.base).await, before, "every server loaded the same parcels");
    }

    // An import on the primary: each server answers for the new parcels within a second of
    // its source having them (the primary's commit, or the standby's replay of it).
    let second = samples().join("20197.geojson").display().to_string();
    on_primary(&["import", &second]);
    let committed = Instant::now();
    let head = feed_head(&url).await;
    let replayed = {
        let standby_url = standby_url.clone();
        tokio::spawn(async move {
            while feed_head(&standby_url).await < head {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            committed.elapsed()
        })
    };
    let mut seen = Vec::new();
    for (s, _) in &servers {
        let (c, base) = (c.clone(), s.base.clone());
        seen.push(tokio::spawn(async move {
            while matched(&c, &base).await <= before {
                assert!(committed.elapsed() < Duration::from_secs(20), "{base} never answered the import");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            committed.elapsed()
        }));
    }
    let replay = replayed.await.expect("the standby replays");
    for ((s, on_standby), seen) in servers.iter().zip(seen) {
        let seen = seen.await.expect("the server answers");
        let allowed = Duration::from_secs(1) + if *on_standby { replay } else { Duration::ZERO };
        println!("{}: the import answered {seen:?} after the commit (standby replay {replay:?})", s.base);
        assert!(seen <= allowed, "{}: {seen:?} after the commit, {allowed:?} allowed", s.base);
    }
    let (_, _, health) = get_with(&reqwest::Client::new(), &format!("{}/health", servers[0].0.base)).await;
    assert!(health["replica"]["lag_seconds"].is_number(), "a server on the standby tells its lag: {health}");

    // Load on all three, and the primary stopped for 30 s.
    let asked = parcels(&c, &servers[2].0.base).await;
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = servers
        .iter()
        .map(|(s, on_standby)| {
            tokio::spawn(load(c.clone(), s.base.clone(), asked.clone(), *on_standby, Arc::clone(&stop)))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    primary.stop().expect("the primary stops");
    let stopped = Instant::now();
    let mut away = vec![false; servers.len()];
    while stopped.elapsed() < Duration::from_secs(30) {
        for (i, (s, _)) in servers.iter().enumerate() {
            let (_, _, health) = get_with(&reqwest::Client::new(), &format!("{}/health", s.base)).await;
            away[i] |= health["audit"]["primary"] == "away" && health["audit"]["spool"] == "waiting";
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(away.iter().all(|a| *a), "every server saw the primary away and spooled its entries: {away:?}");
    primary.start_again().expect("the primary returns");
    let back = Instant::now();
    for (s, _) in &servers {
        loop {
            let (_, _, health) = get_with(&reqwest::Client::new(), &format!("{}/health", s.base)).await;
            if health["audit"]["primary"] == "reachable" && health["audit"]["spool"] == "empty" {
                break;
            }
            assert!(back.elapsed() < Duration::from_secs(60), "{}: the spool never drained: {health}", s.base);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut answers = 0;
    for ((s, _), load) in servers.iter().zip(loads) {
        let answered = load.await.expect("the load");
        println!("{}: {answered:?}", s.base);
        assert_eq!(answered.keys().copied().collect::<Vec<_>>(), vec![200], "{}: every read answered", s.base);
        answers += answered.values().sum::<usize>();
    }
    for (s, _) in servers {
        s.stop().await;
    }

    // The chain is whole, and holds an entry for every answer the agency had: the load's, and
    // the requests that counted parcels and found points before it.
    let verified = on_primary(&["audit", "verify"]);
    println!("{verified}");
    let keyring = landdb_store::data_keys::Keyring::at(&dir.join("data.keys")).expect("the keyring");
    let store = AnyStore::open_with(&DatabaseUrl::parse(&url).expect("url"), keyring).await.expect("the primary");
    let entries = landdb_store::AccessStore::audit_entries(
        &store,
        &AuditQuery { agency: Some(AGENCY.into()), limit: 10_000_000, ..AuditQuery::default() },
    )
    .await
    .expect("entries");
    // Before the load, the agency only counted parcels and listed them (the items route).
    let loaded = entries.iter().filter(|e| e.event.endpoint != "/collections/parcels/items").count();
    assert_eq!(loaded, answers, "one audit entry for every answer of the load");
    let _ = std::fs::remove_dir_all(&dir);
    drop(standby);
}
