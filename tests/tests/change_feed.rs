//! The scoped change feed, followed as an agency follows it: random sequences of imports (new
//! parcels, updates, moves between communes, splits, merges, retirements) and policy changes,
//! with followers of different scopes reading in small pages, sometimes asking twice with the
//! same token (a follower killed before it kept an answer), and continuing on another server of
//! the same database. At the end each follower's copy equals, parcel for parcel and field for
//! field, what its agency sees through `items`; and no event ever names a version outside the
//! agency's area.

use std::collections::{BTreeMap, BTreeSet};

use landdb_access::{Area, Role};
use landdb_model::{ParcelVersion, VersionId};
use landdb_store::{AnyStore, BatchWriter, NewBatch, ParcelStore};
use landdb_tests::fixtures::parcel;
use landdb_tests::http::{OPERATOR_KEY, Server, agency, client_with, get_with, policy, replica, samples, server};
use rand::{Rng, SeedableRng};
use serde_json::Value;

const COMMUNES: [&str; 3] = ["20194", "20197", "20200"];

/// A follower: its key, its token and its copy (version → feature), and, during a snapshot that
/// reset it, the versions it held before that the snapshot has not sent again.
struct Follower {
    name: &'static str,
    client: reqwest::Client,
    token: Option<String>,
    copy: BTreeMap<i64, Value>,
    unconfirmed: Option<BTreeSet<i64>>,
    /// The communes its agency sees now.
    area: Vec<&'static str>,
    /// The communes it saw before its area last changed, until it has followed since: what
    /// `left` the copy is named then.
    before: Vec<&'static str>,
    /// Snapshots it was sent (the first, and one a change of its personal-data grant).
    resets: usize,
    /// The events it was sent, by kind.
    counted: BTreeMap<String, usize>,
}

impl Follower {
    fn new(name: &'static str, key: &str, area: Vec<&'static str>) -> Follower {
        Follower {
            name,
            client: client_with(key),
            token: None,
            copy: BTreeMap::new(),
            unconfirmed: None,
            area,
            before: Vec::new(),
            resets: 0,
            counted: BTreeMap::new(),
        }
    }

    /// Reads the feed until it has caught up, in pages of `limit`; with `replay`, asks for some
    /// pages twice and keeps only the second answer. Checks that every event is in its area.
    async fn follow(&mut self, base: &str, store: &AnyStore, limit: usize, rng: &mut impl Rng, replay: bool) {
        for _ in 0..10_000 {
            let mut url = format!("{base}/collections/parcels/changes?limit={limit}");
            if let Some(t) = &self.token {
                url.push_str(&format!("&after={t}"));
            }
            if replay && rng.gen_bool(0.2) {
                let (status, _, _) = get_with(&self.client, &url).await; // lost with the follower
                assert_eq!(status, 200);
            }
            let (status, _, doc) = get_with(&self.client, &url).await;
            assert_eq!(status, 200, "{}: {doc}", self.name);
            if doc["reset"] == true {
                self.unconfirmed = Some(self.copy.keys().copied().collect());
                self.resets += 1;
            }
            let changes = doc["changes"].as_array().expect("changes");
            assert!(changes.len() <= limit, "a page holds at most its limit");
            let mut named = Vec::new();
            for c in changes {
                let id = c["id"].as_i64().expect("id");
                named.push(id);
                for list in ["came_from", "went_to"] {
                    named.extend(c[list].as_array().into_iter().flatten().map(|v| v.as_i64().expect("id")));
                }
                named.extend(c["replaces"].as_i64());
                *self.counted.entry(c["kind"].as_str().expect("kind").to_owned()).or_default() += 1;
                match c["kind"].as_str().expect("kind") {
                    "snapshot" | "created" | "updated" | "entered" => {
                        if let Some(r) = c["replaces"].as_i64() {
                            self.copy.remove(&r);
                        }
                        assert_eq!(c["feature"]["id"].as_i64(), Some(id), "{c}");
                        self.copy.insert(id, c["feature"].clone());
                        if let Some(u) = &mut self.unconfirmed {
                            u.remove(&id);
                        }
                    }
                    "retired" | "left" => {
                        assert!(c.get("feature").is_none(), "a removal carries no parcel: {c}");
                        self.copy.remove(&id);
                    }
                    other => panic!("unknown kind {other}"),
                }
            }
            for id in named {
                let v: ParcelVersion = store.version(VersionId(id)).await.expect("store").expect("a version");
                let commune = v.parcel.key.commune.as_str();
                assert!(
                    self.area.contains(&commune) || self.before.contains(&commune),
                    "{} was told of version {id} of commune {}, outside its area {:?}",
                    self.name,
                    v.parcel.key.commune,
                    self.area
                );
            }
            if doc["snapshotComplete"] == true
                && let Some(gone) = self.unconfirmed.take()
            {
                for id in gone {
                    self.copy.remove(&id);
                }
            }
            self.token = Some(doc["next"].as_str().expect("next").to_owned());
            if doc["phase"] == "changes" && doc["caughtUp"] == true {
                self.before.clear();
                return;
            }
        }
        panic!("{} never caught up", self.name);
    }

    /// What the agency sees through `items`, every page.
    async fn items(&self, base: &str) -> BTreeMap<i64, Value> {
        let mut all = BTreeMap::new();
        let mut url = format!("{base}/collections/parcels/items?limit=1000");
        loop {
            let (status, _, doc) = get_with(&self.client, &url).await;
            assert_eq!(status, 200, "{doc}");
            for f in doc["features"].as_array().expect("features") {
                all.insert(f["id"].as_i64().expect("id"), f.clone());
            }
            match landdb_tests::http::link(&doc, "next") {
                Some(next) => url = next.to_owned(),
                None => return all,
            }
        }
    }
}

fn batch(name: &str) -> NewBatch {
    NewBatch { source: name.into(), province_code: Some("48".into()), content_hash: None, mode: "append".into() }
}

/// One random import: new parcels, an update, a move to another commune, a split, a merge or a
/// retirement, committed as a batch.
async fn random_import<R: Rng>(store: &AnyStore, rng: &mut R, serial: &mut u32) {
    let current = store.current_page(None, 100_000).await.expect("current");
    let pick = |rng: &mut R| current[rng.gen_range(0..current.len())].clone();
    let mut b = store.begin_batch(batch("random")).await.expect("begin");
    let lon = 108.2 + f64::from(*serial % 50) * 0.0003;
    let mut next = || {
        *serial += 1;
        serial.to_string()
    };
    match rng.gen_range(0..6) {
        0 => {
            let n = rng.gen_range(1..4);
            let parcels: Vec<_> = (0..n).map(|i| parcel(COMMUNES[i % 3], "900", &next(), lon, 16.05)).collect();
            b.insert(&parcels).await.expect("insert");
        }
        1 => {
            let p = pick(rng);
            let mut q = parcel(p.parcel.key.commune.as_str(), &p.parcel.key.sheet, &p.parcel.key.number, lon, 16.06);
            q.address = Some(format!("sửa {}", next()));
            b.supersede(&q, &[p.id]).await.expect("update");
        }
        2 => {
            let p = pick(rng);
            let other = COMMUNES.iter().find(|c| **c != p.parcel.key.commune.as_str()).expect("another commune");
            b.supersede(&parcel(other, "901", &next(), lon, 16.07), &[p.id]).await.expect("move");
        }
        3 => {
            let p = pick(rng);
            let commune = p.parcel.key.commune.as_str().to_owned();
            b.supersede(&parcel(&commune, "902", &next(), lon, 16.08), &[p.id]).await.expect("split");
            let elsewhere = if rng.gen_bool(0.5) { COMMUNES[rng.gen_range(0..3)] } else { &commune };
            b.supersede(&parcel(elsewhere, "902", &next(), lon + 0.0002, 16.08), &[p.id]).await.expect("split");
        }
        4 => {
            let (p, q) = (pick(rng), pick(rng));
            if p.id != q.id {
                let commune = COMMUNES[rng.gen_range(0..3)];
                b.supersede(&parcel(commune, "903", &next(), lon, 16.09), &[p.id, q.id]).await.expect("merge");
            }
        }
        _ => {
            let p = pick(rng);
            b.retire(&[p.id]).await.expect("retire");
        }
    }
    b.commit(serde_json::json!({})).await.expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_follower_ends_equal_to_what_it_sees_through_items() {
    let s = server(&COMMUNES.map(|c| samples().join(format!("{c}.geojson")))).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20);
    let one = agency(
        &s,
        "one-commune",
        Role::Reader,
        policy(Role::Reader, Area::Communes { codes: vec![COMMUNES[0].into()] }, false),
    )
    .await;
    let two = agency(
        &s,
        "two-communes",
        Role::Reader,
        policy(Role::Reader, Area::Communes { codes: vec![COMMUNES[1].into(), COMMUNES[2].into()] }, true),
    )
    .await;
    let mut followers = vec![
        Follower::new("one-commune", &one, vec![COMMUNES[0]]),
        Follower::new("two-communes", &two, vec![COMMUNES[1], COMMUNES[2]]),
        Follower::new("operator", OPERATOR_KEY, COMMUNES.to_vec()),
    ];
    let mut serial = 0;
    for round in 0..40 {
        random_import(&s.store, &mut rng, &mut serial).await;
        // Now and then the first agency's area grows or shrinks.
        if round % 13 == 6 {
            let grown = followers[0].area.len() == 1;
            let area: Vec<&'static str> = if grown { vec![COMMUNES[0], COMMUNES[1]] } else { vec![COMMUNES[0]] };
            let codes = area.iter().map(|c| (*c).to_owned()).collect();
            agency(&s, "one-commune", Role::Reader, policy(Role::Reader, Area::Communes { codes }, false)).await;
            let before = std::mem::replace(&mut followers[0].area, area);
            followers[0].before.extend(before);
        }
        // And the second agency's personal-data grant comes and goes.
        if round % 11 == 4 {
            let codes = vec![COMMUNES[1].into(), COMMUNES[2].into()];
            let personal = round % 22 != 4;
            agency(&s, "two-communes", Role::Reader, policy(Role::Reader, Area::Communes { codes }, personal)).await;
        }
        for f in &mut followers {
            if rng.gen_bool(0.5) {
                caught_up(&s).await;
                let limit = rng.gen_range(1..40);
                f.follow(&s.base, &s.store, limit, &mut rng, true).await;
            }
        }
    }
    caught_up(&s).await;
    for f in &mut followers {
        f.follow(&s.base, &s.store, 500, &mut rng, false).await;
        let seen = f.items(&s.base).await;
        let (held, shown): (BTreeSet<&i64>, BTreeSet<&i64>) = (f.copy.keys().collect(), seen.keys().collect());
        assert!(
            held == shown,
            "{}: held and not shown {:?}, shown and not held {:?}",
            f.name,
            held.difference(&shown).collect::<Vec<_>>(),
            shown.difference(&held).collect::<Vec<_>>()
        );
        assert_eq!(f.copy, seen, "{}: features", f.name);
    }
    // A change of area moves a copy by what entered and left it, never by a new snapshot.
    assert_eq!(followers[0].resets, 1, "the first agency's area changes sent it a new snapshot");

    // Another server of the same database takes the tokens (the key is the database's).
    let other = replica(&s).await;
    random_import(&s.store, &mut rng, &mut serial).await;
    for f in &mut followers {
        f.follow(&other.base, &s.store, 50, &mut rng, false).await;
        // The other server's engine may be a moment behind the feed the follower read.
        let mut seen = f.items(&other.base).await;
        for _ in 0..50 {
            if seen == f.copy {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            seen = f.items(&other.base).await;
        }
        assert_eq!(f.copy, seen, "{} on the other server", f.name);
    }
}

/// Waits until the server's engine has applied everything committed.
async fn caught_up(s: &Server) {
    let head = s.store.feed_head().await.expect("head");
    while s.engine.snapshot().position() < head {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A token is the agency's own: another agency, an edited token or a made-up one get the same
/// 400, which says nothing of what the token held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_works_only_for_its_agency() {
    let s = server(&[samples().join("20194.geojson")]).await;
    let one = client_with(
        &agency(&s, "one", Role::Reader, policy(Role::Reader, Area::Communes { codes: vec!["20194".into()] }, false))
            .await,
    );
    let two = client_with(
        &agency(&s, "two", Role::Reader, policy(Role::Reader, Area::Communes { codes: vec!["20194".into()] }, false))
            .await,
    );
    let url = format!("{}/collections/parcels/changes?limit=5", s.base);
    let (status, _, doc) = get_with(&one, &url).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["reset"], true);
    assert_eq!(doc["changes"].as_array().map(Vec::len), Some(5));
    let token = doc["next"].as_str().expect("next").to_owned();
    let (status, _, own) = get_with(&one, &format!("{url}&after={token}")).await;
    assert_eq!(status, 200, "{own}");
    let mut edited = token.clone().into_bytes();
    edited[30] = if edited[30] == b'0' { b'1' } else { b'0' };
    let edited = String::from_utf8(edited).expect("hex");
    let refusals = [
        get_with(&two, &format!("{url}&after={token}")).await,
        get_with(&one, &format!("{url}&after={edited}")).await,
        get_with(&one, &format!("{url}&after=00")).await,
        get_with(&one, &format!("{url}&after=zz")).await,
    ];
    for (status, _, body) in &refusals {
        assert_eq!(*status, 400, "{body}");
        assert_eq!(body, &refusals[0].2, "every bad token gets the same answer");
    }
    // Long polling: nothing new, and the answer waits about as long as asked.
    let mut token = own["next"].as_str().expect("next").to_owned();
    loop {
        let (_, _, doc) = get_with(&one, &format!("{url}&after={token}")).await;
        token = doc["next"].as_str().expect("next").to_owned();
        if doc["phase"] == "changes" && doc["caughtUp"] == true {
            break;
        }
    }
    let started = std::time::Instant::now();
    let (status, _, doc) = get_with(&one, &format!("{url}&after={token}&wait=1")).await;
    assert_eq!(status, 200);
    assert_eq!(doc["changes"], serde_json::json!([]));
    assert!(started.elapsed() >= std::time::Duration::from_millis(900), "{:?}", started.elapsed());
    // A change arriving during the wait ends it at once.
    let waiting = tokio::spawn({
        let (one, url) = (one.clone(), format!("{url}&after={}&wait=20", doc["next"].as_str().expect("next")));
        async move {
            let started = std::time::Instant::now();
            (get_with(&one, &url).await, started.elapsed())
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut b = s.store.begin_batch(batch("during the wait")).await.expect("begin");
    b.insert(&[parcel("20194", "904", "1", 108.21, 16.05)]).await.expect("insert");
    b.commit(serde_json::json!({})).await.expect("commit");
    let ((status, _, doc), waited) = waiting.await.expect("the waiting request");
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["changes"][0]["kind"], "created", "{doc}");
    assert!(waited < std::time::Duration::from_secs(10), "{waited:?}");
}

/// `landdb sync` of two agencies into a PostGIS database and into GeoPackages, killed at random
/// moments while it reads a backlog of random imports (and, twice, a change of one agency's
/// area) and started again: each copy ends equal to what its agency sees through `items`,
/// parcel for parcel, property for property, boundary for boundary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_keeps_a_copy_equal_to_items_through_kills() {
    use landdb_sync::{Copy, Options, Source};
    let s = server(&COMMUNES.map(|c| samples().join(format!("{c}.geojson")))).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let target = landdb_tests::PostgisDb::create().await.expect("a target database");
    let once = Options { once: true, limit: 37, wait: 0 };
    // Two agencies, each with a copy in its own table of one PostGIS database, in its own
    // GeoPackage and in its own embedded store: a notary (two communes, personal data) and a tax
    // office (the third commune).
    struct Mirror {
        name: &'static str,
        reader: Follower,
        source: Source,
        table: String,
        gpkg: String,
        embedded: String,
    }
    let mut mirrors = Vec::new();
    for (name, communes, personal) in
        [("notary", vec![COMMUNES[0], COMMUNES[2]], true), ("tax", vec![COMMUNES[1]], false)]
    {
        let codes = communes.iter().map(|c| (*c).to_owned()).collect();
        let key = agency(&s, name, Role::Reader, policy(Role::Reader, Area::Communes { codes }, personal)).await;
        let file = |extension: &str| {
            let path = std::env::temp_dir().join(format!("landdb-sync-test-{}-{name}.{extension}", std::process::id()));
            let _ = std::fs::remove_file(&path);
            path.to_string_lossy().into_owned()
        };
        mirrors.push(Mirror {
            name,
            reader: Follower::new(name, &key, communes),
            source: Source { url: s.base.clone(), key, ca_cert: None },
            table: format!("parcels_{name}"),
            gpkg: file("gpkg"),
            embedded: file("sqlite"),
        });
    }
    let mut serial = 0;
    for round in 0..6 {
        for _ in 0..5 {
            random_import(&s.store, &mut rng, &mut serial).await;
        }
        // In rounds 2 and 4 the notary's area shrinks to one commune and grows back: its copies
        // are told what left and what entered. In rounds 3 and 5 the tax office is granted
        // personal data and loses it again: its copies get a reset snapshot, and drop what it
        // does not send again.
        if round == 2 || round == 4 {
            let codes =
                if round == 2 { vec![COMMUNES[0].into()] } else { vec![COMMUNES[0].into(), COMMUNES[2].into()] };
            agency(&s, "notary", Role::Reader, policy(Role::Reader, Area::Communes { codes }, true)).await;
        }
        if round == 3 || round == 5 {
            let codes = vec![COMMUNES[1].into()];
            agency(&s, "tax", Role::Reader, policy(Role::Reader, Area::Communes { codes }, round == 3)).await;
        }
        caught_up(&s).await;
        for m in &mirrors {
            for into in [target.url.as_str(), m.gpkg.as_str(), m.embedded.as_str()] {
                // Killed after a random moment, then started again until it has caught up.
                let copy = Copy::open(into, &m.table).await.expect("the copy");
                let run = landdb_sync::sync(&m.source, &copy, once, &|_| {});
                let killed = tokio::time::timeout(std::time::Duration::from_millis(rng.gen_range(5..200)), run).await;
                if let Ok(done) = killed {
                    done.expect("a run");
                }
                drop(copy);
                let copy = Copy::open(into, &m.table).await.expect("the copy, again");
                landdb_sync::sync(&m.source, &copy, once, &|_| {}).await.expect("a run to the end");
            }
            let seen = m.reader.items(&s.base).await;
            let name = m.name;
            let same_versions = |held: Vec<&i64>, copy: &str| {
                assert_eq!(held, seen.keys().collect::<Vec<_>>(), "{name}, round {round}: {copy}");
            };
            let held = postgis_copy(&target.url, &m.table).await;
            same_versions(held.keys().collect(), "PostGIS");
            for (v, f) in &seen {
                let (properties, geometry) = &held[v];
                assert_eq!(properties, &f["properties"], "{name}: version {v}: properties");
                assert_same_boundary(geometry, &f["geometry"], *v);
            }
            let held = geopackage_copy(&m.gpkg);
            same_versions(held.keys().collect(), "GeoPackage");
            for (v, f) in &seen {
                assert_eq!(&held[v], &f["properties"], "{name}: version {v}: GeoPackage properties");
            }
            let held = embedded_copy(&m.embedded).await;
            same_versions(held.keys().collect(), "embedded store");
            for (v, f) in &seen {
                let (parcel, geometry) = &held[v];
                for (field, value) in f["properties"].as_object().expect("properties") {
                    if field != "version" {
                        assert_eq!(&parcel[field], value, "{name}: version {v}: {field} in the embedded store");
                    }
                }
                assert_same_boundary(geometry, &f["geometry"], *v);
            }
        }
    }
    for m in &mirrors {
        let _ = std::fs::remove_file(&m.gpkg);
        let _ = std::fs::remove_file(&m.embedded);
    }
}

/// The copy in an embedded store: the server's version → (the parcel's fields under the feed's
/// names, boundary as GeoJSON).
async fn embedded_copy(path: &str) -> BTreeMap<i64, (Value, Value)> {
    let store = AnyStore::open(&landdb_store::DatabaseUrl::Sqlite(path.into())).await.expect("the embedded store");
    let mut copy = BTreeMap::new();
    let mut after = None;
    loop {
        let page = store.current_page(after, 1_000).await.expect("a page");
        let Some(last) = page.last() else { return copy };
        after = Some(last.id);
        for v in page {
            let p = &v.parcel;
            let fields = serde_json::json!({
                "national_id": p.national_id.as_str(),
                "commune": p.key.commune.as_str(),
                "sheet": p.key.sheet,
                "number": p.key.number,
                "land_use": p.land_use.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
                "area_m2": p.geometry_area_m2,
                "address": p.address,
            });
            let geometry = serde_json::to_value(geojson::Geometry::from(&p.geometry)).expect("GeoJSON");
            copy.insert(p.extra["source_version"].as_i64().expect("the server's version"), (fields, geometry));
        }
    }
}

/// The PostGIS copy: version → (properties, boundary as GeoJSON).
async fn postgis_copy(url: &str, table: &str) -> BTreeMap<i64, (Value, Value)> {
    use sqlx::Row;
    let pool = sqlx::PgPool::connect(url).await.expect("the copy's database");
    let rows = sqlx::query(&format!("SELECT version, properties, ST_AsGeoJSON(geom, 15)::jsonb AS g FROM {table}"))
        .fetch_all(&pool)
        .await
        .expect("the copy");
    rows.iter()
        .map(|r| (r.get::<i64, _>("version"), (r.get::<Value, _>("properties"), r.get::<Value, _>("g"))))
        .collect()
}

/// The GeoPackage copy: version → properties.
fn geopackage_copy(path: &str) -> BTreeMap<i64, Value> {
    use gdal::vector::LayerAccess;
    let dataset = gdal::Dataset::open(path).expect("the GeoPackage");
    let mut layer = dataset.layer_by_name("parcels").expect("its layer");
    layer
        .features()
        .map(|f| {
            let version =
                f.field_as_integer64(f.field_index("version").expect("version")).expect("read").expect("a version");
            let text =
                f.field_as_string(f.field_index("properties").expect("properties")).expect("read").expect("properties");
            (version, serde_json::from_str(&text).expect("JSON"))
        })
        .collect()
}

/// Two GeoJSON MultiPolygons with the same coordinates (to a nanodegree).
fn assert_same_boundary(a: &Value, b: &Value, version: i64) {
    let flat = |g: &Value| -> Vec<f64> {
        g["coordinates"]
            .as_array()
            .expect("polygons")
            .iter()
            .flat_map(|p| p.as_array().expect("rings").clone())
            .flat_map(|r| r.as_array().expect("points").clone())
            .flat_map(|pt| {
                pt.as_array().expect("a point").iter().map(|c| c.as_f64().expect("a number")).collect::<Vec<_>>()
            })
            .collect()
    };
    let (x, y) = (flat(a), flat(b));
    assert_eq!(x.len(), y.len(), "version {version}: {a} vs {b}");
    assert!(x.iter().zip(&y).all(|(p, q)| (p - q).abs() < 1e-9), "version {version}: {a} vs {b}");
}

/// The feed as Server-Sent Events: the snapshot's events each with an id, the snapshot's end,
/// then a change as it is committed; a stream started again from an event's id (as
/// `Last-Event-ID`) goes on after that event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_streams_as_server_sent_events_and_resumes_from_an_event_id() {
    let s = server(&[samples().join("20194.geojson"), samples().join("20197.geojson")]).await;
    let key =
        agency(&s, "stream", Role::Reader, policy(Role::Reader, Area::Communes { codes: vec!["20194".into()] }, false))
            .await;
    let client = client_with(&key);
    let url = format!("{}/collections/parcels/changes?limit=100", s.base);
    let own = s.engine.snapshot().in_commune(&landdb_model::CommuneCode::parse("20194").expect("code")).len();

    /// Reads events from a stream until `until` says stop: (id, event, data) each.
    async fn read_events(
        response: &mut reqwest::Response,
        mut until: impl FnMut(&[(String, String, Value)]) -> bool,
    ) -> Vec<(String, String, Value)> {
        let (mut text, mut events) = (String::new(), Vec::new());
        while !until(&events) {
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(30), response.chunk())
                .await
                .expect("the stream goes on")
                .expect("a chunk")
                .expect("not the end");
            text.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
            while let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), Value::Null);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_owned()
                    }
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned()
                    }
                    if let Some(v) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(v).expect("JSON data")
                    }
                }
                if !event.is_empty() {
                    events.push((id, event, data));
                }
            }
        }
        events
    }

    let mut stream = client.get(&url).header("accept", "text/event-stream").send().await.expect("a stream");
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let events = read_events(&mut stream, |e| e.last().is_some_and(|(_, kind, _)| kind == "snapshot-complete")).await;
    assert_eq!(events[0].1, "reset");
    let snapshot: Vec<_> = events.iter().filter(|(_, kind, _)| kind == "snapshot").collect();
    assert_eq!(snapshot.len(), own, "every parcel of the commune, once");
    assert!(snapshot.iter().all(|(id, _, d)| !id.is_empty() && d["feature"]["properties"]["commune"] == "20194"));
    // A change committed while the stream waits arrives on it.
    let mut b = s.store.begin_batch(batch("streamed")).await.expect("begin");
    let made = b.insert(&[parcel("20194", "905", "1", 108.21, 16.05)]).await.expect("insert")[0];
    b.commit(serde_json::json!({})).await.expect("commit");
    let live = read_events(&mut stream, |e| !e.is_empty()).await;
    assert_eq!((live[0].1.as_str(), live[0].2["id"].as_i64()), ("created", Some(made.0)), "{live:?}");
    drop(stream);

    // From the id of the tenth snapshot event: the events after it, none before.
    let tenth = &snapshot[9];
    let mut again = client
        .get(&url)
        .header("accept", "text/event-stream")
        .header("last-event-id", &tenth.0)
        .send()
        .await
        .expect("a stream");
    let resumed = read_events(&mut again, |e| e.iter().any(|(_, kind, _)| kind == "created")).await;
    let versions: Vec<i64> =
        resumed.iter().filter(|(_, k, _)| k == "snapshot").map(|(_, _, d)| d["id"].as_i64().expect("id")).collect();
    let expected: Vec<i64> = snapshot[10..].iter().map(|(_, _, d)| d["id"].as_i64().expect("id")).collect();
    assert_eq!(versions, expected, "the snapshot goes on after the tenth parcel");
    assert!(resumed.iter().all(|(_, k, _)| k != "reset"), "a resumed stream is no new snapshot");
}

/// A change of an agency's area moves its copy by what entered and left: one `left` for each
/// parcel it no longer sees and one `entered` for each it now sees, with no new snapshot, from
/// communes to communes and to a polygon; a change of its personal-data grant sends the scope
/// again (every parcel reads differently). Each time the copy ends equal to `items`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_moves_a_copy_by_what_entered_and_left() {
    let s = server(&[samples().join("20194.geojson"), samples().join("20197.geojson")]).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let communes = |codes: &[&str]| Area::Communes { codes: codes.iter().map(|c| (*c).to_owned()).collect() };
    let key = agency(&s, "mover", Role::Reader, policy(Role::Reader, communes(&["20194"]), false)).await;
    let mut f = Follower::new("mover", &key, vec!["20194"]);
    f.follow(&s.base, &s.store, 100, &mut rng, false).await;
    assert_eq!(f.copy, f.items(&s.base).await);
    let first: BTreeSet<i64> = f.copy.keys().copied().collect();
    assert!(!first.is_empty());

    // The kinds of the events of the next pages, up to caught up.
    async fn kinds(f: &mut Follower, base: &str, store: &AnyStore, limit: usize) -> BTreeMap<String, BTreeSet<i64>> {
        let before: BTreeSet<i64> = f.copy.keys().copied().collect();
        let resets = f.resets;
        let counted = std::mem::take(&mut f.counted);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        f.follow(base, store, limit, &mut rng, false).await;
        assert_eq!(f.resets, resets, "a change of area is no new snapshot");
        let after: BTreeSet<i64> = f.copy.keys().copied().collect();
        let sent = std::mem::replace(&mut f.counted, counted);
        let (left, entered) = (before.difference(&after).count(), after.difference(&before).count());
        // One event a parcel that left or entered (and the parcel imported meanwhile, created).
        assert_eq!(sent.get("left").copied().unwrap_or(0), left, "{sent:?}");
        assert_eq!(
            sent.get("entered").copied().unwrap_or(0) + sent.get("created").copied().unwrap_or(0),
            entered,
            "{sent:?}"
        );
        BTreeMap::from([
            ("left".to_owned(), before.difference(&after).copied().collect()),
            ("entered".to_owned(), after.difference(&before).copied().collect()),
        ])
    }

    // To another commune: every parcel of the first leaves, every one of the second enters.
    agency(&s, "mover", Role::Reader, policy(Role::Reader, communes(&["20197"]), false)).await;
    f.before = std::mem::replace(&mut f.area, vec!["20197"]);
    let moved = kinds(&mut f, &s.base, &s.store, 37).await;
    let seen = f.items(&s.base).await;
    assert_eq!(f.copy, seen, "the copy after its area moved");
    assert_eq!(moved["left"], first);
    assert_eq!(moved["entered"], seen.keys().copied().collect::<BTreeSet<_>>());

    // To a polygon around part of the second commune (and a parcel imported meanwhile).
    let corner = seen.values().next().expect("a parcel")["geometry"]["coordinates"][0][0][0].clone();
    let (x, y) = (corner[0].as_f64().expect("x"), corner[1].as_f64().expect("y"));
    let wkt = format!(
        "POLYGON(({} {}, {} {}, {} {}, {} {}, {} {}))",
        x - 0.002,
        y - 0.002,
        x + 0.002,
        y - 0.002,
        x + 0.002,
        y + 0.002,
        x - 0.002,
        y + 0.002,
        x - 0.002,
        y - 0.002
    );
    let mut b = s.store.begin_batch(batch("while the area changes")).await.expect("begin");
    b.insert(&[parcel("20197", "905", "1", x, y)]).await.expect("insert");
    b.commit(serde_json::json!({})).await.expect("commit");
    caught_up(&s).await;
    agency(&s, "mover", Role::Reader, policy(Role::Reader, Area::Polygon { wkt }, false)).await;
    f.before = f.area.clone();
    let moved = kinds(&mut f, &s.base, &s.store, 37).await;
    let seen = f.items(&s.base).await;
    assert_eq!(f.copy, seen, "the copy after its area became a polygon");
    assert!(!moved["left"].is_empty() && !seen.is_empty(), "the polygon holds some of the commune, not all");

    // To the whole country and back to a commune, in small pages: a page looks at a bounded
    // number of parcels, and the moves still all arrive, once.
    agency(&s, "mover", Role::Reader, policy(Role::Reader, Area::Nation, false)).await;
    f.before = std::mem::replace(&mut f.area, vec!["20194", "20197"]);
    let moved = kinds(&mut f, &s.base, &s.store, 3).await;
    let seen = f.items(&s.base).await;
    assert_eq!(f.copy, seen, "the copy after its area became the nation");
    assert!(moved["left"].is_empty() && !moved["entered"].is_empty());
    agency(&s, "mover", Role::Reader, policy(Role::Reader, communes(&["20197"]), false)).await;
    f.before = std::mem::replace(&mut f.area, vec!["20197"]);
    let moved = kinds(&mut f, &s.base, &s.store, 2).await;
    assert_eq!(f.copy, f.items(&s.base).await, "the copy after the nation became a commune again");
    assert!(moved["entered"].is_empty() && !moved["left"].is_empty());

    // Personal data granted: the scope is sent again.
    let resets = f.resets;
    agency(&s, "mover", Role::Reader, policy(Role::Reader, communes(&["20197"]), true)).await;
    f.follow(&s.base, &s.store, 100, &mut rng, false).await;
    assert_eq!(f.resets, resets + 1, "a change of the personal-data grant sends the scope again");
    assert_eq!(f.copy, f.items(&s.base).await, "the copy after personal data was granted");
}
