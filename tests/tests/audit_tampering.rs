//! The audit log against its own administrator, on real PostGIS and on the embedded store: every
//! column of the audit tables edited (append-only triggers lifted first, as the owner of the
//! tables can), entries forged after the head, the tail cut with the head moved back, the whole
//! log wiped; each found by `verify_audit`, or by the signed checkpoints where only a witness
//! outside the database can find it.

use landdb_access::audit::{AuditEvent, GENESIS};
use landdb_access::checkpoint::{Checkpoint, SigningKey, Witness};
use landdb_access::{Broken, Verified};
use landdb_store::{AccessStore, AnyStore, AuditQuery, DatabaseUrl};
use landdb_tests::{EmbeddedDb, PostgisDb};

/// SQL straight at the tables, as their administrator would write it.
enum Db {
    Pg(sqlx::PgPool),
    Lite(sqlx::SqlitePool),
}

impl Db {
    async fn run(&self, sql: &str) {
        let done = match self {
            Db::Pg(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
            Db::Lite(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
        };
        done.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

async fn postgis() -> (AnyStore, Db, PostgisDb) {
    let db = PostgisDb::create().await.expect("throwaway PostGIS database");
    let store = AnyStore::open(&DatabaseUrl::parse(&db.url).expect("url")).await.expect("PostGIS store");
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
    (store, Db::Pg(pool), db)
}

async fn embedded() -> (AnyStore, Db, EmbeddedDb) {
    let db = EmbeddedDb::create();
    let store = AnyStore::open(&DatabaseUrl::Sqlite(db.path.clone())).await.expect("embedded store");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.path.display())).await.expect("open");
    (store, Db::Lite(pool), db)
}

fn event(i: i64) -> AuditEvent {
    let at = chrono::DateTime::from_timestamp(1_760_000_000 + i, 0).expect("time");
    AuditEvent {
        at: AuditEvent::new_at(at),
        agency: if i % 2 == 0 { "tax".into() } else { "police".into() },
        key_id: "0123456789abcdef".into(),
        method: "GET".into(),
        endpoint: "/collections/parcels/items".into(),
        params: format!("limit={i}"),
        purpose: "Luật Đất đai 2024".into(),
        status: 200,
        parcels: 2,
        personal: if i % 3 == 0 { vec![100 + i] } else { Vec::new() },
        versions: vec![200 + i, 100 + i],
        communes: vec![30_000 + (i % 3) as u32],
    }
}

/// Nine entries in three batches (PostGIS: three blocks, 1–3, 4–6, 7–9).
async fn fill(store: &AnyStore) {
    for batch in [1..=3, 4..=6, 7..=9] {
        let events: Vec<AuditEvent> = batch.map(event).collect();
        store.append_audit(&events).await.expect("appended");
    }
}

async fn verify(store: &AnyStore) -> Result<Verified, Broken> {
    store.verify_audit(&mut |_| {}).await.expect("the store reads")
}

/// The chain with the checkpoint file `text` (as `landdb audit verify --checkpoints` does).
async fn verify_with(store: &AnyStore, text: &str, key: &SigningKey) -> Result<usize, String> {
    let mut witness = Witness::new(text, &key.verifying_key()).map_err(|e| e.to_string())?;
    let mut contradiction = None;
    let verified = store
        .verify_audit(&mut |e| {
            if contradiction.is_none()
                && let Err(c) = witness.saw(e.seq, &e.hash)
            {
                contradiction = Some(c);
            }
        })
        .await
        .expect("the store reads");
    if let Some(c) = contradiction {
        return Err(c.to_string());
    }
    let verified = verified.map_err(|b| b.to_string())?;
    witness.end(verified.last_seq).map_err(|e| e.to_string())
}

/// A checkpoint file signed at entries 3 and 9 of the log as it is now.
async fn checkpoints(store: &AnyStore, key: &SigningKey) -> String {
    let all = store.audit_entries(&AuditQuery { limit: 100, ..AuditQuery::default() }).await.expect("entries");
    [3usize, 9]
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let at = chrono::Utc::now() + chrono::Duration::seconds(k as i64);
            Checkpoint::sign(all[i - 1].seq, &all[i - 1].hash, at, key).line() + "\n"
        })
        .collect()
}

/// Each edit (an SQL statement) must be found, with `expected` in the report; the tables are put
/// back after each.
async fn each_edit_is_found(store: &AnyStore, db: &Db, tables: &[&str], edits: &[(&str, &str)]) {
    for t in tables {
        db.run(&format!("CREATE TABLE saved_{t} AS SELECT * FROM {t}")).await;
    }
    for (sql, expected) in edits {
        db.run(sql).await;
        let broken = verify(store).await.expect_err(sql);
        assert!(broken.to_string().contains(expected), "{sql}: expected {expected:?} in: {broken}");
        for t in tables {
            db.run(&format!("DELETE FROM {t}; INSERT INTO {t} SELECT * FROM saved_{t}")).await;
        }
        assert_eq!(verify(store).await.expect("put back").entries, 9, "after {sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgis_every_column_of_the_audit_tables_is_checked() {
    let (store, db, _guard) = postgis().await;
    fill(&store).await;
    assert_eq!(verify(&store).await.expect("intact").entries, 9);
    db.run("ALTER TABLE audit_block DISABLE TRIGGER audit_block_append_only").await;
    // The middle block (entries 4–6: agencies tax and police; versions 104, 105, 106, 204…;
    // communes 30000, 30001, 30002).
    let edits = [
        ("UPDATE audit_block SET last_seq = 5 WHERE last_seq = 6", "column last_seq"),
        ("UPDATE audit_block SET first_seq = 5 WHERE last_seq = 6", "column first_seq"),
        ("UPDATE audit_block SET min_at = min_at + interval '1 second' WHERE last_seq = 6", "column min_at"),
        ("UPDATE audit_block SET max_at = max_at - interval '1 second' WHERE last_seq = 6", "column max_at"),
        ("UPDATE audit_block SET agencies = array_remove(agencies, 'police') WHERE last_seq = 6", "column agencies"),
        ("UPDATE audit_block SET agencies = agencies || '{spy}' WHERE last_seq = 6", "column agencies"),
        // Emptying the index hides "who saw parcel 105" without touching a hash.
        ("UPDATE audit_block SET communes = '{}' WHERE last_seq = 6", "column communes"),
        ("UPDATE audit_block SET communes = array_remove(communes, 30002) WHERE last_seq = 6", "column communes"),
        ("UPDATE audit_block SET communes = communes || 40000 WHERE last_seq = 6", "column communes"),
        // The versions' index is for entries of the older forms only: none are listed here.
        ("UPDATE audit_block SET disclosed = '{205}' WHERE last_seq = 6", "column disclosed"),
        (
            "UPDATE audit_block SET entries = replace(entries, '\"limit=5\"', '\"limit=50\"') WHERE last_seq = 6",
            "audit entry 5",
        ),
        ("UPDATE audit_block SET entries = 'not a line' WHERE last_seq = 6", "column entries"),
        ("UPDATE audit_head SET seq = 8", "recorded head"),
        ("UPDATE audit_head SET hash = repeat('0', 64)", "recorded head"),
        ("DELETE FROM audit_head", "head is missing"),
    ];
    each_edit_is_found(&store, &db, &["audit_block", "audit_head"], &edits).await;
    // "Who received parcel 205" is answered from the blocks of its commune (30002), or from
    // every block when the commune is not known; a block of other communes is not read.
    for communes in [Some(vec![30_002]), None] {
        let q = AuditQuery { received: Some(vec![205]), communes, limit: 10, ..AuditQuery::default() };
        let who: Vec<(i64, String)> = store
            .audit_entries(&q)
            .await
            .expect("entries")
            .iter()
            .map(|e| (e.seq, e.event.agency.to_string()))
            .collect();
        assert_eq!(who, vec![(5, "police".to_owned())]);
    }
    db.run("UPDATE audit_block SET communes = '{30000}' WHERE last_seq = 6").await;
    let q = AuditQuery { received: Some(vec![205]), communes: Some(vec![30_002]), limit: 10, ..AuditQuery::default() };
    assert!(store.audit_entries(&q).await.expect("entries").is_empty(), "the commune index is what is read");
    db.run("UPDATE audit_block SET communes = '{30000,30001,30002}' WHERE last_seq = 6").await;
    assert_eq!(verify(&store).await.expect("put back").entries, 9);
    anchored(&store, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_every_column_of_the_audit_tables_is_checked() {
    let (store, db, _guard) = embedded().await;
    fill(&store).await;
    assert_eq!(verify(&store).await.expect("intact").entries, 9);
    // SQLite cannot disable a trigger: its owner drops them.
    for t in
        ["audit_entry_no_update", "audit_entry_no_delete", "audit_disclosure_no_update", "audit_disclosure_no_delete"]
    {
        db.run(&format!("DROP TRIGGER {t}")).await;
    }
    let edits = [
        ("UPDATE audit_entry SET seq = 50 WHERE seq = 5", "audit entry 6: expected entry 5"),
        ("UPDATE audit_entry SET at = replace(at, '2025', '2024') WHERE seq = 5", "audit entry 5"),
        ("UPDATE audit_entry SET agency = 'spy' WHERE seq = 5", "audit entry 5"),
        ("UPDATE audit_entry SET key_id = 'fedcba9876543210' WHERE seq = 5", "audit entry 5"),
        ("UPDATE audit_entry SET method = 'POST' WHERE seq = 5", "audit entry 5"),
        ("UPDATE audit_entry SET endpoint = '/parcels/at' WHERE seq = 5", "audit entry 5"),
        ("UPDATE audit_entry SET params = '' WHERE seq = 5", "audit entry 5"),
        ("UPDATE audit_entry SET purpose = 'none' WHERE seq = 5", "audit entry 5"),
        ("UPDATE audit_entry SET status = 404 WHERE seq = 5", "audit entry 5"),
        ("UPDATE audit_entry SET parcels = 0 WHERE seq = 5", "audit entry 5"),
        ("UPDATE audit_entry SET personal = '[105]' WHERE seq = 5", "audit entry 5"),
        ("UPDATE audit_entry SET versions = '[]' WHERE seq = 5", "audit entry 5"),
        ("UPDATE audit_entry SET versions = NULL WHERE seq = 5", "audit entry 5"),
        ("UPDATE audit_entry SET communes = '[30000]' WHERE seq = 5", "audit entry 5"),
        ("UPDATE audit_entry SET communes = NULL WHERE seq = 5", "audit entry 5"),
        ("UPDATE audit_entry SET prev_hash = hash WHERE seq = 5", "audit entry 5"),
        ("UPDATE audit_entry SET hash = prev_hash WHERE seq = 5", "audit entry 5: its content does not match"),
        ("UPDATE audit_disclosure SET version_id = 999 WHERE seq = 5 AND version_id = 205", "audit_disclosure"),
        ("UPDATE audit_disclosure SET seq = 4 WHERE seq = 5 AND version_id = 205", "audit_disclosure"),
        ("DELETE FROM audit_disclosure WHERE seq = 5", "audit_disclosure lacks version 105"),
        ("INSERT INTO audit_disclosure VALUES (77, 5)", "audit_disclosure lists version 77"),
        ("INSERT INTO audit_disclosure VALUES (77, 12)", "audit_disclosure lists version 77"),
        ("UPDATE audit_head SET seq = 8", "recorded head"),
        (
            "UPDATE audit_head SET hash = prev_hash FROM (SELECT prev_hash FROM audit_entry WHERE seq = 9)",
            "recorded head",
        ),
        ("DELETE FROM audit_head", "head is missing"),
    ];
    each_edit_is_found(&store, &db, &["audit_entry", "audit_disclosure", "audit_head"], &edits).await;
    let q = AuditQuery { received: Some(vec![205]), limit: 10, ..AuditQuery::default() };
    let who: Vec<i64> = store.audit_entries(&q).await.expect("entries").iter().map(|e| e.seq).collect();
    assert_eq!(who, vec![5]);
    anchored(&store, &db).await;
}

/// Forged entries after the head, the tail cut with the head moved back, the log wiped: with
/// and without checkpoints. The tables' triggers are already lifted.
async fn anchored(store: &AnyStore, db: &Db) {
    let key = landdb_access::checkpoint::generate_key();
    let file = checkpoints(store, &key).await;
    assert_eq!(verify_with(store, &file, &key).await, Ok(2));
    let all = store.audit_entries(&AuditQuery { limit: 100, ..AuditQuery::default() }).await.expect("entries");
    let pg = matches!(db, Db::Pg(_));
    let tables =
        if pg { vec!["audit_block", "audit_head"] } else { vec!["audit_entry", "audit_disclosure", "audit_head"] };
    for t in &tables {
        db.run(&format!("DROP TABLE IF EXISTS saved_{t}; CREATE TABLE saved_{t} AS SELECT * FROM {t}")).await;
    }
    let restore = || async {
        for t in &tables {
            db.run(&format!("DELETE FROM {t}; INSERT INTO {t} SELECT * FROM saved_{t}")).await;
        }
    };

    // An entry forged after the head, chained correctly: the table's real end is past the head.
    let forged = AuditEvent { agency: "tax".into(), ..event(10) }.chain(10, &all[8].hash);
    if pg {
        let mut line = Vec::new();
        landdb_access::audit::write_line(10, &forged.event, &all[8].hash, &mut line);
        let line = String::from_utf8(line).expect("utf-8");
        db.run(&format!(
            "INSERT INTO audit_block (last_seq, first_seq, min_at, max_at, agencies, disclosed, communes, entries) \
             VALUES (10, 10, to_timestamp(1760000010), to_timestamp(1760000010), '{{tax}}', '{{}}', '{{30001}}', '{}')",
            line.trim_end().replace('\'', "''")
        ))
        .await;
    } else {
        db.run(&format!(
            "INSERT INTO audit_entry (seq, at, agency, key_id, method, endpoint, params, purpose, status, parcels, \
             personal, versions, communes, prev_hash, hash) SELECT 10, '{}', 'tax', key_id, method, endpoint, \
             'limit=10', purpose, status, parcels, '[]', '[110,210]', '[30001]', '{}', '{}' FROM audit_entry WHERE seq = 9; \
             INSERT INTO audit_disclosure VALUES (110, 10), (210, 10)",
            forged.event.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            all[8].hash,
            forged.hash
        ))
        .await;
    }
    let broken = verify(store).await.expect_err("forged after the head");
    assert!(broken.why.contains("after the recorded head"), "{broken}");
    restore().await;

    // The tail cut and the head moved back to entry 6: the chain alone holds (nothing in the
    // database remembers entries 7–9, which is why checkpoints exist)…
    let cut = if pg {
        "DELETE FROM audit_block WHERE last_seq = 9".to_owned()
    } else {
        "DELETE FROM audit_entry WHERE seq > 6; DELETE FROM audit_disclosure WHERE seq > 6".to_owned()
    };
    db.run(&cut).await;
    db.run(&format!("UPDATE audit_head SET seq = 6, hash = '{}'", all[5].hash)).await;
    assert_eq!(verify(store).await.expect("a shorter chain, consistent").entries, 6);
    // …and the checkpoint of entry 9 (line 2) finds it.
    let caught = verify_with(store, &file, &key).await.expect_err("rewound");
    assert!(caught.contains("line 2") && caught.contains("now ends at entry 6"), "{caught}");
    restore().await;

    // The log wiped after the checkpoints: an empty log verifies, the first checkpoint does not.
    let wipe = if pg { "DELETE FROM audit_block" } else { "DELETE FROM audit_entry; DELETE FROM audit_disclosure" };
    db.run(wipe).await;
    db.run("DELETE FROM audit_head").await;
    assert_eq!(verify(store).await.expect("empty").entries, 0);
    let caught = verify_with(store, &file, &key).await.expect_err("wiped");
    assert!(caught.contains("line 1") && caught.contains("now ends at entry 0"), "{caught}");
    restore().await;

    // The whole log rewritten from entry 2 on, every hash recomputed: consistent, and caught by
    // the checkpoint of entry 3, whose hash it no longer has.
    let mut prev = all[0].hash.clone();
    let rewritten: Vec<_> = all[1..]
        .iter()
        .map(|e| {
            let e = AuditEvent { agency: "tax".into(), ..e.event.clone() }.chain(e.seq, &prev);
            prev.clone_from(&e.hash);
            e
        })
        .collect();
    if pg {
        db.run("DELETE FROM audit_block WHERE last_seq > 3").await;
        let mut lines = Vec::new();
        landdb_access::audit::write_line(1, &all[0].event, GENESIS, &mut lines);
        let mut prev = all[0].hash.clone();
        for e in &rewritten {
            prev = landdb_access::audit::write_line(e.seq, &e.event, &prev, &mut lines);
        }
        let text = String::from_utf8(lines).expect("utf-8");
        db.run(&format!(
            "DELETE FROM audit_block; INSERT INTO audit_block (last_seq, first_seq, min_at, max_at, agencies, \
             disclosed, communes, entries) VALUES (9, 1, to_timestamp(1760000001), to_timestamp(1760000009), \
             '{{tax,police}}', '{{}}', '{{30000,30001,30002}}', '{}')",
            text.trim_end().replace('\'', "''")
        ))
        .await;
    } else {
        for e in &rewritten {
            db.run(&format!(
                "UPDATE audit_entry SET agency = 'tax', prev_hash = '{}', hash = '{}' WHERE seq = {}",
                e.prev_hash, e.hash, e.seq
            ))
            .await;
        }
    }
    db.run(&format!("UPDATE audit_head SET seq = 9, hash = '{}'", prev)).await;
    assert_eq!(verify(store).await.expect("a consistent rewrite").entries, 9);
    let caught = verify_with(store, &file, &key).await.expect_err("rewritten");
    assert!(caught.contains("line 1") && caught.contains("rewritten"), "{caught}");
    restore().await;
    assert_eq!(verify_with(store, &file, &key).await, Ok(2));

    // A checkpoint file under another key, or with a line edited, is refused by line.
    let other = landdb_access::checkpoint::generate_key();
    assert!(verify_with(store, &file, &other).await.expect_err("wrong key").contains("line 1"));
    let lines: Vec<&str> = file.lines().collect();
    let edited = format!("{}\n{}\n", lines[0], lines[1].replacen("9 ", "8 ", 1));
    assert!(verify_with(store, &edited, &key).await.expect_err("edited").contains("line 2"));
}
