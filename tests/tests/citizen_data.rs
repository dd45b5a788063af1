//! Right holders' identities at rest and lookups by citizen (issue 21), judged from outside:
//! `pg_dump` of a database loaded with the generator's right holders holds none of their names
//! or citizen IDs; `GET /holders/{id}/parcels` returns exactly the parcels whose holders carry
//! the ID (within the caller's area); no audit entry holds an ID, yet `landdb audit subject`
//! finds every disclosure of a citizen's data; and `landdb keys rotate-data-key` reseals
//! everything while lookups go on. Rows written in clear before sealing existed are sealed when
//! either store opens.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use landdb_access::{Area, Operation, Policy, Role};
use landdb_model::CitizenId;
use landdb_store::data_keys::Keyring;
use landdb_store::{AccessStore, AnyStore, AuditQuery, DatabaseUrl, ParcelStore};
use landdb_tests::http::{Setup, agency, client_with, get_with, policy, server_with};
use landdb_tests::process::binary;
use landdb_tests::{EmbeddedDb, PostgisDb};
use serde_json::Value;

const HOLDER_ROUTE: &str = "/holders/{citizen_id}/parcels";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("landdb-citizen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

/// The generator's GeoJSON files in `dir`.
fn generate(dir: &Path, args: &[&str]) -> Vec<PathBuf> {
    landdb_tests::process::generate(dir, args)
}

/// What the generator wrote of right holders, read from its files without landdb: each citizen
/// ID with the keys (`commune/sheet/number`) of the parcels its holder holds, and every name.
struct Holders {
    parcels: BTreeMap<String, BTreeSet<String>>,
    names: BTreeSet<String>,
}

fn holders(files: &[PathBuf]) -> Holders {
    let mut parcels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut names = BTreeSet::new();
    let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    for file in files {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(file).expect("file")).expect("GeoJSON");
        for f in doc["features"].as_array().expect("features") {
            let p = &f["properties"];
            let key = format!("{}/{}/{}", text(&p["MaXa"]), text(&p["SoHieuToBanDo"]), text(&p["SoThuTuThua"]));
            if let Some(id) = p["SoDinhDanhC1"].as_str() {
                parcels.entry(id.to_owned()).or_default().insert(key);
            }
            for name in [&p["TenChu"], &p["TenChu2"]] {
                if let Some(n) = name.as_str() {
                    names.insert(n.to_owned());
                }
            }
        }
    }
    Holders { parcels, names }
}

fn keys_of(doc: &Value) -> BTreeSet<String> {
    doc["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| {
            let p = &f["properties"];
            format!(
                "{}/{}/{}",
                p["commune"].as_str().expect("commune"),
                p["sheet"].as_str().expect("sheet"),
                p["number"].as_str().expect("number")
            )
        })
        .collect()
}

fn pg_dump(url: &str) -> String {
    let out = Command::new("pg_dump").arg("--no-owner").arg(url).output().expect("pg_dump runs");
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 dump")
}

/// Neither the dump nor anything else given holds a holder's name or citizen ID.
fn assert_nothing_in_clear(what: &str, text: &str, holders: &Holders) {
    for id in holders.parcels.keys() {
        assert!(!text.contains(id.as_str()), "{what} holds citizen ID {id} in clear");
    }
    for name in &holders.names {
        assert!(!text.contains(name.as_str()), "{what} holds the name {name} in clear");
    }
}

fn landdb(url: &str, keyring: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary("landdb"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("LANDDB_DATA_KEYS", keyring)
        .env_remove("LANDDB_REFERENCE_DIR")
        .output()
        .expect("landdb runs")
}

fn holder_policy(area: Area, operations: &[Operation]) -> Policy {
    Policy { operations: operations.iter().copied().collect(), ..policy(Role::Reader, area, true) }
}

/// The lines of `landdb audit subject ID`, as JSON.
fn subject_lines(url: &str, keyring: &Path, id: &str) -> Vec<Value> {
    let out = landdb(url, keyring, &["audit", "subject", id]);
    assert!(out.status.success(), "audit subject: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_by_citizen_find_exactly_their_parcels_and_no_identity_is_in_clear() {
    let dir = scratch("lookups");
    let files = generate(&dir.join("data"), &["--communes", "2", "--parcels-per-commune", "150", "--seed", "21"]);
    let holders = holders(&files);
    assert!(holders.parcels.len() > 100, "the generator gave {} citizen IDs", holders.parcels.len());
    assert!(holders.parcels.values().any(|p| p.len() > 1), "some holder holds several parcels");
    let keyring = dir.join("data.keys");
    let server = server_with(&files, Setup { keyring: Some(keyring.clone()), ..Setup::default() }).await;

    // A dump of the database alone reveals no holder.
    let dump = pg_dump(&server.db.url);
    assert!(dump.contains("right_holder") && dump.contains("data_key"), "a real dump");
    assert_nothing_in_clear("pg_dump", &dump, &holders);

    // Holder lookups need personal data.
    let without_personal = Policy { personal_data: false, ..holder_policy(Area::Nation, &[Operation::HolderLookup]) };
    let refused = landdb_tests::http::try_agency(&server, "no-personal", Role::Reader, without_personal).await;
    assert!(refused.is_err_and(|e| e.contains("personal data")), "holder-lookup without personal data is refused");

    let first_commune =
        holders.parcels.values().flatten().next().expect("a parcel").split('/').next().expect("commune").to_owned();
    let notary = client_with(
        &agency(
            &server,
            "notary",
            Role::Reader,
            holder_policy(
                Area::Nation,
                &[Operation::Lookup, Operation::Items, Operation::Export, Operation::History, Operation::HolderLookup],
            ),
        )
        .await,
    );
    let tax = client_with(
        &agency(
            &server,
            "tax-commune",
            Role::Reader,
            holder_policy(Area::Communes { codes: vec![first_commune.clone()] }, &[Operation::HolderLookup]),
        )
        .await,
    );
    let police = client_with(&agency(&server, "police", Role::Reader, policy(Role::Reader, Area::Nation, true)).await);
    let base = &server.base;
    let lookup = |id: &str| format!("{base}/holders/{id}/parcels");

    for (id, expected) in &holders.parcels {
        let (status, _, doc) = get_with(&notary, &lookup(id)).await;
        assert_eq!(status, 200, "{doc}");
        assert_eq!(&keys_of(&doc), expected, "the parcels of {id}");
        assert_eq!(doc["numberMatched"].as_u64(), Some(expected.len() as u64));
    }
    // Within the caller's area only.
    for (id, expected) in holders.parcels.iter().take(40) {
        let (status, _, doc) = get_with(&tax, &lookup(id)).await;
        assert_eq!(status, 200, "{doc}");
        let inside: BTreeSet<String> = expected.iter().filter(|k| k.starts_with(&first_commune)).cloned().collect();
        assert_eq!(keys_of(&doc), inside, "the parcels of {id} in commune {first_commune}");
    }
    let (some_id, some_parcels) = holders.parcels.iter().find(|(_, p)| p.len() > 1).expect("a holder of several");
    let (status, _, _) = get_with(&police, &lookup(some_id)).await;
    assert_eq!(status, 403, "an agency without holder-lookup");
    let (status, _, _) = get_with(&tax, &format!("{}?history=true", lookup(some_id))).await;
    assert_eq!(status, 403, "history without the history operation");
    let (status, _, doc) = get_with(&notary, &format!("{}?history=true&purpose=HS-2026-118", lookup(some_id))).await;
    assert_eq!((status, keys_of(&doc)), (200, some_parcels.clone()), "no parcel changed: history adds nothing");

    // Not a citizen ID: refused before any lookup, saying why.
    for (bad, why) in [
        ("04818500012", "11 characters"),
        ("04818500012x", "not a digit"),
        ("099185000123", "no province"),
        ("048930000123", "future"),
    ] {
        let (status, _, doc) = get_with(&notary, &lookup(bad)).await;
        assert_eq!(status, 400, "{bad}: {doc}");
        assert!(
            doc["description"].as_str().is_some_and(|d| d.contains("citizen ID") && d.contains(why)),
            "{bad}: {doc}"
        );
    }
    // Percent-encoded, the same citizen: found, and on record under the same mark.
    let encoded: String = some_id.chars().map(|c| format!("%{:02X}", c as u32)).collect();
    let (status, _, doc) = get_with(&notary, &lookup(&encoded)).await;
    assert_eq!((status, keys_of(&doc)), (200, some_parcels.clone()), "{encoded}");
    let (status, _, doc) = get_with(&notary, &lookup("048185999999")).await;
    assert_eq!((status, doc["numberMatched"].as_u64()), (200, Some(0)), "a valid ID nobody in the data has");

    // A parcel of the citizen read with its address: a disclosure of their data too.
    let key = some_parcels.iter().next().expect("a parcel");
    let (status, _, _) = get_with(&notary, &format!("{base}/parcels/key/{key}?properties=address")).await;
    assert_eq!(status, 200);
    // And in an export of its commune, and in the change feed's snapshot.
    let commune = key.split('/').next().expect("commune");
    let export =
        notary.get(format!("{base}/collections/parcels/export?commune={commune}")).send().await.expect("export");
    assert_eq!(export.status(), 200);
    let _ = export.bytes().await.expect("the whole export");
    let (status, _, feed) = get_with(&notary, &format!("{base}/collections/parcels/changes?limit=10000")).await;
    assert_eq!(status, 200, "{feed}");

    // The audit log names citizens by blind index only.
    server.app.gate.audit.flush().await;
    let entries =
        server.store.audit_entries(&AuditQuery { limit: 1_000_000, ..AuditQuery::default() }).await.expect("entries");
    let by_citizen: Vec<_> = entries.iter().filter(|e| e.event.endpoint == HOLDER_ROUTE).collect();
    assert!(by_citizen.len() > holders.parcels.len(), "every lookup by citizen is on record");
    assert!(by_citizen.iter().all(|e| e.event.params.contains("subject=")), "each names its subject");
    let log = serde_json::to_string(&entries).expect("JSON");
    assert_nothing_in_clear("the audit log", &log, &holders);
    for bad in ["04818500012", "099185000123"] {
        assert!(!log.contains(bad), "a refused ID {bad} is not on record in clear");
    }

    // What a land office tells the citizen.
    let lines = subject_lines(&server.db.url, &keyring, some_id);
    let how = |agency: &str, how: &str| lines.iter().filter(|l| l["agency"] == agency && l["how"] == how).count();
    assert_eq!(how("notary", "lookup by citizen ID"), 3, "the percent-encoded one too: {lines:#?}");
    assert_eq!(how("police", "lookup by citizen ID"), 1, "the refused one too: {lines:#?}");
    assert!(how("tax-commune", "lookup by citizen ID") >= 1, "{lines:#?}");
    assert!(
        lines.iter().any(|l| l["agency"] == "notary" && l["how"] == "parcel request" && l["personal_data"] == true),
        "the read of one of their parcels with its address: {lines:#?}"
    );
    assert!(lines.iter().any(|l| l["params"].as_str().is_some_and(|p| p.contains("purpose=HS-2026-118"))));
    for how in ["export", "change feed"] {
        assert!(
            lines.iter().any(|l| l["agency"] == "notary" && l["how"] == how && l["personal_data"] == true),
            "the {how} that held their parcels: {lines:#?}"
        );
    }
    assert!(lines.iter().all(|l| !l["params"].as_str().unwrap_or_default().contains("subject=")), "no index shown");
    let other = subject_lines(&server.db.url, &keyring, "048185999999");
    assert_eq!(other.len(), 1, "the one lookup of a citizen with no parcels: {other:#?}");

    // A new data key, everything resealed under it while the server answers.
    let rotated = landdb(&server.db.url, &keyring, &["keys", "rotate-data-key"]);
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    let said = String::from_utf8_lossy(&rotated.stdout);
    let resealed = holders.parcels.values().map(BTreeSet::len).sum::<usize>();
    assert!(said.contains("resealed"), "{said}");
    let keys = Keyring::at(&keyring).expect("keyring").keys().expect("keys");
    assert_eq!(keys.len(), 2, "the old key stays in the keyring");
    let states: Vec<(i64, String)> = sqlx::query_as("SELECT id, state FROM data_key ORDER BY since, id")
        .fetch_all(match &server.store {
            AnyStore::Postgres(s) => s.pool(),
            AnyStore::Sqlite(_) => unreachable!("a PostGIS server"),
        })
        .await
        .expect("keys");
    assert_eq!(
        states,
        vec![(keys[0].id(), "retired".to_owned()), (keys[1].id(), "active".to_owned())],
        "{said} ({resealed} first holders)"
    );
    for (id, expected) in &holders.parcels {
        let (status, _, doc) = get_with(&notary, &lookup(id)).await;
        assert_eq!((status, &keys_of(&doc)), (200, expected), "the parcels of {id} after the rotation");
    }
    assert_nothing_in_clear("pg_dump after the rotation", &pg_dump(&server.db.url), &holders);
    server.app.gate.audit.flush().await;
    let lines = subject_lines(&server.db.url, &keyring, some_id);
    assert_eq!(
        lines.iter().filter(|l| l["agency"] == "notary" && l["how"] == "lookup by citizen ID").count(),
        4,
        "lookups named under the old key and the new: {lines:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Right holders and quarantined records written in clear by a landdb before sealing existed:
/// the store seals them when it opens, drops the clear columns, and reads them back as written,
/// and again after a rotation to a new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_in_clear_before_sealing_are_sealed_when_either_store_opens() {
    let dir = scratch("legacy");
    let keyring = Keyring::at(&dir.join("data.keys")).expect("keyring");
    let holder = landdb_model::RightHolder {
        name: "Trần Thị Mỹ Hạnh".into(),
        citizen_id: Some("048190123456".into()),
        birth_year: Some(1990),
        address: Some("Số 7 Hùng Vương".into()),
    };
    let citizen = CitizenId::parse("048190123456", &landdb_model::ReferenceData::embedded().expect("reference"), 2026)
        .expect("an ID");

    // PostGIS at migration 12, as the last landdb without sealing left it.
    let db = PostgisDb::create().await.expect("database");
    {
        use sqlx::Connection;
        let old = migrations_before(&dir, "postgres", 12);
        let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
        sqlx::migrate::Migrator::new(old.as_path()).await.expect("migrations").run(&mut conn).await.expect("migrated");
        let batch: i64 =
            sqlx::query_scalar("INSERT INTO import_batch (source, mode) VALUES ('legacy', 'append') RETURNING id")
                .fetch_one(&mut conn)
                .await
                .expect("batch");
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO parcel_version (national_id, commune_code, sheet, parcel_no, commune_code_received, province_code, \
             geometry_area_m2, geom, valid_from, batch_id) VALUES ('w6ugq8x2m0ab', '20194', '1', '1', '20194', '48', 100, \
             ST_Multi(ST_GeomFromText('POLYGON((108.2 16,108.201 16,108.201 16.001,108.2 16))', 4326)), now(), $1) RETURNING id",
        )
        .bind(batch)
        .fetch_one(&mut conn)
        .await
        .expect("version");
        sqlx::query("INSERT INTO right_holder (version_id, ordinal, name, citizen_id, birth_year, address) VALUES ($1, 0, $2, $3, $4, $5)")
            .bind(version)
            .bind(&holder.name)
            .bind(&holder.citizen_id)
            .bind(holder.birth_year)
            .bind(&holder.address)
            .execute(&mut conn)
            .await
            .expect("holder");
        sqlx::query("INSERT INTO quarantine (batch_id, file, layer, feature, reasons, source) VALUES ($1, 'a.shp', 'a', 1, '[]', $2)")
            .bind(batch)
            .bind(serde_json::json!({ "attributes": { "TenChu": holder.name, "SoDinhDanhC1": holder.citizen_id } }))
            .execute(&mut conn)
            .await
            .expect("quarantine");
        let store = AnyStore::open_with(&DatabaseUrl::parse(&db.url).expect("url"), Arc::clone(&keyring))
            .await
            .expect("the store opens and seals");
        check_sealed(&store, &citizen, &holder, batch, version).await;
        rotate_and_check(&store, &citizen, &holder, batch, version).await;
        let dump = pg_dump(&db.url);
        assert!(!dump.contains("Mỹ Hạnh") && !dump.contains("048190123456"), "nothing left in clear");
        let clear: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'right_holder' AND column_name IN ('name', 'citizen_id')",
        )
        .fetch_one(&mut conn)
        .await
        .expect("columns");
        assert_eq!(clear, 0, "the clear columns are gone");
    }

    // The embedded store at migration 9.
    let file = EmbeddedDb::create();
    {
        use sqlx::ConnectOptions;
        let old = migrations_before(&dir, "sqlite", 9);
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&file.path)
            .create_if_missing(true)
            .connect()
            .await
            .expect("connect");
        sqlx::migrate::Migrator::new(old.as_path()).await.expect("migrations").run(&mut conn).await.expect("migrated");
        let batch: i64 = sqlx::query_scalar(
            "INSERT INTO import_batch (source, mode, started_at) VALUES ('legacy', 'append', '2025-01-01T00:00:00.000000Z') RETURNING id",
        )
        .fetch_one(&mut conn)
        .await
        .expect("batch");
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO parcel_version (national_id, commune_code, sheet, parcel_no, commune_code_received, province_code, \
             geometry_area_m2, geom, min_lon, min_lat, max_lon, max_lat, valid_from, batch_id) \
             VALUES ('w6ugq8x2m0ab', '20194', '1', '1', '20194', '48', 100, x'00', 108.2, 16, 108.201, 16.001, '2025-01-01T00:00:00.000000Z', ?) RETURNING id",
        )
        .bind(batch)
        .fetch_one(&mut conn)
        .await
        .expect("version");
        sqlx::query("INSERT INTO right_holder (version_id, ordinal, name, citizen_id, birth_year, address) VALUES (?, 0, ?, ?, ?, ?)")
            .bind(version)
            .bind(&holder.name)
            .bind(&holder.citizen_id)
            .bind(holder.birth_year)
            .bind(&holder.address)
            .execute(&mut conn)
            .await
            .expect("holder");
        sqlx::query("INSERT INTO quarantine (batch_id, file, layer, feature, reasons, source) VALUES (?, 'a.shp', 'a', 1, '[]', ?)")
            .bind(batch)
            .bind(serde_json::json!({ "attributes": { "TenChu": holder.name, "SoDinhDanhC1": holder.citizen_id } }).to_string())
            .execute(&mut conn)
            .await
            .expect("quarantine");
        drop(conn);
        let store = AnyStore::open_with(
            &DatabaseUrl::parse(&file.path.display().to_string()).expect("url"),
            Arc::clone(&keyring),
        )
        .await
        .expect("the store opens and seals");
        check_sealed(&store, &citizen, &holder, batch, version).await;
        rotate_and_check(&store, &citizen, &holder, batch, version).await;
        if let AnyStore::Sqlite(s) = &store {
            sqlx::query("VACUUM").execute(s.pool()).await.expect("vacuum");
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(s.pool()).await.expect("checkpoint");
        }
        let bytes = std::fs::read(&file.path).expect("the file");
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("Mỹ Hạnh") && !text.contains("048190123456"), "nothing left in clear in the file");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A copy of the store's migrations up to `last`, as an older landdb shipped them.
fn migrations_before(dir: &Path, store: &str, last: u32) -> PathBuf {
    let from = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../migrations").join(store);
    let to = dir.join(format!("{store}-migrations"));
    std::fs::create_dir_all(&to).expect("dir");
    for entry in std::fs::read_dir(&from).expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        let version: u32 = name[..4].parse().expect("a numbered migration");
        if version <= last {
            std::fs::copy(&path, to.join(&name)).expect("copy");
        }
    }
    to
}

async fn check_sealed(
    store: &AnyStore,
    citizen: &CitizenId,
    holder: &landdb_model::RightHolder,
    batch: i64,
    version: i64,
) {
    let read = store.right_holders(landdb_model::VersionId(version)).await.expect("holders");
    assert_eq!(read, vec![holder.clone()], "read back as written");
    assert_eq!(store.versions_held_by(citizen).await.expect("by citizen"), vec![landdb_model::VersionId(version)]);
    let quarantined = store.quarantined(landdb_model::BatchId(batch)).await.expect("quarantine");
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].source["attributes"]["TenChu"], holder.name.as_str());
}

/// A rotation stopped half way (its old key still `retiring`, a row still under it) is found
/// by citizen in the meantime, and finished by the next run towards the key it made.
async fn resume_a_stopped_rotation(
    store: &AnyStore,
    citizen: &CitizenId,
    holder: &landdb_model::RightHolder,
    batch: i64,
    version: i64,
) {
    let keys = store.keyring().keys().expect("keys");
    let (old, new) = (&keys[keys.len() - 2], &keys[keys.len() - 1]);
    let sealed = old.seal_holder(version, 0, holder);
    let index = sealed.citizen_index.clone().expect("an index");
    match store {
        AnyStore::Postgres(s) => {
            sqlx::query("UPDATE right_holder SET key_id = $1, sealed = $2, citizen_index = $3 WHERE version_id = $4")
                .bind(old.id())
                .bind(&sealed.sealed)
                .bind(&index)
                .bind(version)
                .execute(s.pool())
                .await
                .expect("back under the old key");
            sqlx::query("UPDATE data_key SET state = 'retiring' WHERE id = $1")
                .bind(old.id())
                .execute(s.pool())
                .await
                .expect("retiring");
        }
        AnyStore::Sqlite(s) => {
            sqlx::query("UPDATE right_holder SET key_id = ?, sealed = ?, citizen_index = ? WHERE version_id = ?")
                .bind(old.id())
                .bind(&sealed.sealed)
                .bind(&index)
                .bind(version)
                .execute(s.pool())
                .await
                .expect("back under the old key");
            sqlx::query("UPDATE data_key SET state = 'retiring' WHERE id = ?")
                .bind(old.id())
                .execute(s.pool())
                .await
                .expect("retiring");
        }
    }
    check_sealed(store, citizen, holder, batch, version).await;
    let finished = store.rotate_data_key().await.expect("finished");
    assert_eq!(
        (finished.to.as_str(), finished.holders, finished.quarantined),
        (new.name().as_str(), 1, 0),
        "{finished:?}"
    );
    assert_eq!(store.keyring().keys().expect("keys").len(), keys.len(), "no new key for a resumed rotation");
    check_sealed(store, citizen, holder, batch, version).await;
}

/// A rotation reseals the one holder and the one quarantined record, which read back the same
/// and are found by citizen under the new key.
async fn rotate_and_check(
    store: &AnyStore,
    citizen: &CitizenId,
    holder: &landdb_model::RightHolder,
    batch: i64,
    version: i64,
) {
    let before = store.keyring().newest().expect("a key");
    let rotation = store.rotate_data_key().await.expect("rotated");
    assert_eq!((rotation.holders, rotation.quarantined), (1, 1), "{rotation:?}");
    assert_eq!(rotation.from, vec![before.name()]);
    assert_ne!(rotation.to, before.name());
    check_sealed(store, citizen, holder, batch, version).await;
    resume_a_stopped_rotation(store, citizen, holder, batch, version).await;
}

/// A rotation while lookups by citizen and an import go on, on each store: every lookup made
/// during it finds exactly its citizen's parcels, the import's holders end under the new key,
/// and no row is left under the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_runs_while_lookups_and_an_import_go_on() {
    let dir = scratch("online");
    let first = generate(&dir.join("a"), &["--communes", "2", "--parcels-per-commune", "1200", "--seed", "31"]);
    let both = generate(&dir.join("b"), &["--communes", "3", "--parcels-per-commune", "1200", "--seed", "32"]);
    let taken: BTreeSet<_> = first.iter().filter_map(|f| f.file_name()).collect();
    let later: Vec<PathBuf> = both.into_iter().filter(|f| f.file_name().is_some_and(|n| !taken.contains(n))).collect();
    assert_eq!(later.len(), 1, "a third commune");
    let (early, late) = (holders(&first), holders(&later));
    let reference = landdb_model::ReferenceData::embedded().expect("reference");
    // What each lookup may find: its parcels of the first import, and of the second once it
    // committed (two seeds may have drawn the same ID).
    let asked: Vec<(CitizenId, usize, usize)> = early
        .parcels
        .iter()
        .map(|(id, keys)| {
            let more = late.parcels.get(id).map_or(0, BTreeSet::len);
            (CitizenId::parse(id, &reference, 2026).expect("an ID"), keys.len(), keys.len() + more)
        })
        .collect();
    assert!(early.parcels.values().map(BTreeSet::len).sum::<usize>() > 2_000, "more holders than a resealed chunk");

    let pg = PostgisDb::create().await.expect("database");
    let embedded = EmbeddedDb::create();
    for url in [pg.url.clone(), embedded.path.display().to_string()] {
        let keyring = Keyring::at(&dir.join(format!("{}.keys", url.len()))).expect("keyring");
        let store = AnyStore::open_with(&DatabaseUrl::parse(&url).expect("url"), keyring).await.expect("store");
        landdb_tests::http::import_files(&store, &first).await;
        let done = std::sync::atomic::AtomicBool::new(false);
        let lookups = async {
            let (mut made, mut wrong) = (0usize, Vec::new());
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let (id, least, most) = &asked[made % asked.len()];
                let found = store.versions_held_by(id).await.expect("lookup").len();
                if found < *least || found > *most {
                    wrong.push((id.as_str().to_owned(), found, *least));
                }
                made += 1;
            }
            (made, wrong)
        };
        let work = async {
            let (rotation, ()) =
                tokio::join!(store.rotate_data_key(), landdb_tests::http::import_files(&store, &later));
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            rotation
        };
        let ((made, wrong), rotation) = tokio::join!(lookups, work);
        let rotation = rotation.expect("rotated");
        assert!(made > 10, "{url}: lookups ran during the rotation ({made})");
        assert!(wrong.is_empty(), "{url}: lookups during the rotation found otherwise: {wrong:?}");
        let active = store.keyring().keys().expect("keys").into_iter().find(|k| k.name() == rotation.to).expect("new");
        let left: i64 = match &store {
            AnyStore::Postgres(s) => sqlx::query_scalar("SELECT count(*) FROM right_holder WHERE key_id <> $1")
                .bind(active.id())
                .fetch_one(s.pool())
                .await
                .expect("count"),
            AnyStore::Sqlite(s) => sqlx::query_scalar("SELECT count(*) FROM right_holder WHERE key_id <> ?")
                .bind(active.id())
                .fetch_one(s.pool())
                .await
                .expect("count"),
        };
        assert_eq!(left, 0, "{url}: every holder under the new key");
        for (id, keys) in late.parcels.iter().take(200) {
            let citizen = CitizenId::parse(id, &reference, 2026).expect("an ID");
            // Two seeds may have drawn the same ID: then that citizen holds parcels of both.
            let expected = keys.len() + early.parcels.get(id).map_or(0, BTreeSet::len);
            assert_eq!(store.versions_held_by(&citizen).await.expect("lookup").len(), expected, "{url}: {id}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
