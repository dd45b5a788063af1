//! Security events, as the operations centre receives them: a JSON-lines file and an RFC 5424
//! syslog collector (a UDP socket of the test). Each kind of attempt leaves its event, naming the
//! agency and credential when they are known; the audit log broken in the database is reported
//! by the verify route as `tamper-found`.

use std::time::Duration;

use landdb_access::{Area, Role};
use landdb_api::security::Sink;
use landdb_tests::http::{Setup, agency, client, client_with, get_with, policy, samples, server_with};
use serde_json::Value;

async fn events_of(path: &std::path::Path, expected: usize) -> Vec<Value> {
    for _ in 0..50 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        if events.len() >= expected {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fewer than {expected} events in {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_leaves_its_event() {
    let path = std::env::temp_dir().join(format!("landdb-security-events-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let setup = Setup { security_events: Some(Sink::JsonLines(path.clone())), ..Setup::default() };
    let s = server_with(&[samples().join("20194.geojson")], setup).await;
    let area = || Area::Communes { codes: vec!["20194".into()] };
    let reader = agency(&s, "reader", Role::Reader, policy(Role::Reader, area(), false)).await;
    let mut limited = policy(Role::Reader, area(), false);
    limited.limits.requests_per_second = Some(0.5);
    let slow = agency(&s, "slow", Role::Reader, limited).await;
    let revoked = agency(&s, "revoked", Role::Reader, policy(Role::Reader, area(), false)).await;
    let revoked_id = landdb_access::key::id_of(&revoked).expect("a key id").to_owned();
    landdb_api::admin::revoke(&s.store, &revoked_id).await.expect("revoked");
    let expired =
        landdb_api::admin::new_key(&s.store, "reader", Some(chrono::Utc::now() - chrono::Duration::seconds(1)))
            .await
            .expect("an expired key");
    s.app.gate.reload(&s.app.reference).await.expect("reloaded");

    let items = format!("{}/collections/parcels/items?limit=1&filter=commune%3D%2720194%27", s.base);
    assert_eq!(reqwest::get(&items).await.expect("answer").status(), 401);
    assert_eq!(get_with(&client_with("landdb_0123456789abcdef_nothing"), &items).await.0, 401);
    assert_eq!(get_with(&client_with(&revoked), &items).await.0, 401);
    assert_eq!(get_with(&client_with(&expired.token), &items).await.0, 401);
    let export = format!("{}/collections/parcels/export?f=geojson", s.base);
    assert_eq!(get_with(&client_with(&reader), &export).await.0, 403, "a reader may not export");
    // A long path is named by its route, not copied into the event.
    let long = format!("{}/collections/{}", s.base, "x".repeat(5_000));
    assert_eq!(reqwest::get(&long).await.expect("answer").status(), 401);
    let slow = client_with(&slow);
    assert_eq!(get_with(&slow, &items).await.0, 200);
    assert_eq!(get_with(&slow, &items).await.0, 429);

    let events = events_of(&path, 7).await;
    let of = |kind: &str| events.iter().filter(|e| e["kind"] == kind).cloned().collect::<Vec<_>>();
    let failed = of("authentication-failed");
    assert_eq!(failed.len(), 3, "{events:?}");
    assert!(failed.iter().any(|e| e["request"] == "GET /collections/{id}"), "{events:?}");
    assert!(events.iter().all(|e| e.to_string().len() < 1_000), "no event copies what a client sent");
    assert!(failed.iter().all(|e| e["status"] == 401));
    assert!(failed.iter().all(|e| !e.to_string().contains("filter")), "no query (it may hold personal data)");
    assert!(!events.iter().any(|e| e.to_string().contains("nothing")), "no secret of a key");
    let r = &of("credential-revoked")[0];
    assert_eq!((r["agency"].as_str(), r["credential"].as_str()), (Some("revoked"), Some(revoked_id.as_str())));
    let e = &of("credential-expired")[0];
    assert_eq!((e["agency"].as_str(), e["credential"].as_str()), (Some("reader"), Some(expired.record.id.as_str())));
    let f = &of("forbidden")[0];
    assert_eq!((f["agency"].as_str(), f["status"].as_u64()), (Some("reader"), Some(403)));
    let l = &of("limit-reached")[0];
    assert_eq!((l["agency"].as_str(), l["status"].as_u64()), (Some("slow"), Some(429)));

    // The audit log edited in the database: the verify route reports it.
    s.app.gate.audit.flush().await;
    let db = sqlx::PgPool::connect(&s.db.url).await.expect("database");
    sqlx::query("ALTER TABLE audit_block DISABLE TRIGGER audit_block_append_only").execute(&db).await.expect("lift");
    sqlx::query("UPDATE audit_block SET entries = ''").execute(&db).await.expect("an edit");
    let (status, _, verdict) = get_with(&client(), &format!("{}/admin/audit/verify", s.base)).await;
    assert_eq!((status, verdict["intact"].as_bool()), (200, Some(false)), "{verdict}");
    let events = events_of(&path, 8).await;
    assert!(events.iter().any(|e| e["kind"] == "tamper-found"), "{events:?}");
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_syslog_collector_as_rfc_5424() {
    let collector = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("a collector");
    let address = collector.local_addr().expect("address");
    let setup = Setup { security_events: Some(Sink::Syslog(address)), ..Setup::default() };
    let s = server_with(&[samples().join("20194.geojson")], setup).await;
    assert_eq!(reqwest::get(format!("{}/collections", s.base)).await.expect("answer").status(), 401);
    let mut datagram = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), collector.recv(&mut datagram))
        .await
        .expect("a datagram within 5 s")
        .expect("received");
    let message = String::from_utf8_lossy(&datagram[..n]).into_owned();
    // authpriv (10) and notice (5): priority 85; version 1; the kind as MSGID.
    assert!(message.starts_with("<85>1 "), "{message}");
    assert!(message.contains(" landdb ") && message.contains(" authentication-failed [landdb@32473 "), "{message}");
    assert!(message.contains(r#"request="GET /collections""#), "{message}");
}
