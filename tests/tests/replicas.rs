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
        server_with(&[samples().join("20194.geojson")], Setup { read_port: Some(standby.port), ..Setup::default() })
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
