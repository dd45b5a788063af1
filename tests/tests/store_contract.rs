//! The store contract: the same behaviour from PostGIS and from the embedded store. Every test
//! here runs twice, once against a throwaway PostGIS database and once against a throwaway
//! SQLite file.

use std::time::Duration;

use landdb_model::{FeedPosition, VersionId};
use landdb_store::{AnyStore, BatchWriter, ChangeKind, DatabaseUrl, FeedWaiter, NewBatch, ParcelStore, StoreError};
use landdb_tests::fixtures::parcel;
use landdb_tests::{EmbeddedDb, PostgisDb};

/// Keeps the throwaway database alive as long as the store is used.
enum Guard {
    Postgis(#[allow(dead_code)] PostgisDb),
    Embedded(#[allow(dead_code)] EmbeddedDb),
}

async fn postgis() -> (AnyStore, Guard) {
    let db = PostgisDb::create().await.expect("throwaway PostGIS database");
    let store = AnyStore::open(&DatabaseUrl::parse(&db.url).expect("url")).await.expect("open PostGIS store");
    (store, Guard::Postgis(db))
}

async fn embedded() -> (AnyStore, Guard) {
    let db = EmbeddedDb::create();
    let store = AnyStore::open(&DatabaseUrl::Sqlite(db.path.clone())).await.expect("open embedded store");
    (store, Guard::Embedded(db))
}

/// Generates `postgis_NAME` and `embedded_NAME` tests from one `async fn NAME(store: AnyStore)`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod postgis {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = super::postgis().await;
                super::$name(store).await;
            }
        )*}
        mod embedded {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = super::embedded().await;
                super::$name(store).await;
            }
        )*}
    };
}

contract!(
    round_trip_is_exact,
    history_and_lineage_of_update_split_and_merge,
    change_feed_is_ordered_and_resumable,
    a_current_parcel_is_never_silently_overwritten,
    a_failed_batch_leaves_the_store_as_it_was,
    an_uncommitted_batch_is_invisible,
    only_current_versions_can_be_superseded,
    paging_visits_every_current_parcel_once,
    re_upload_is_recognised_by_content_hash,
    the_latest_batch_of_a_source_is_found,
    feed_waiter_wakes_after_a_commit,
    migrations_are_idempotent,
    withdrawn_versions_leave_no_trace,
    which_parcel_was_here_on_a_date,
    agencies_keys_and_the_audit_chain_are_kept,
    a_quota_is_one_count_for_every_process,
    webhook_subscriptions_leases_and_dead_letters_are_kept,
    the_server_secret_is_made_once,
    followed_scopes_are_kept_by_agency_and_fingerprint,
    children_are_found_for_many_parents_at_once,
);

/// Subscriptions are kept whole; one holder at a time has a lease until it lapses; a deleted
/// subscription is not brought back by the worker's update; dead letters are kept and marked.
async fn webhook_subscriptions_leases_and_dead_letters_are_kept(store: AnyStore) {
    use landdb_access::webhook::{DeadLetter, State, Subscription, new_secret};
    use landdb_store::AccessStore;
    let now = chrono::Utc::now();
    let mut sub = Subscription {
        id: "a1".into(),
        agency: "tax".into(),
        key_id: "k1".into(),
        callback: "http://127.0.0.1:9/hook".into(),
        communes: vec!["20194".into()],
        land_use: vec!["ODT".into()],
        filter: Some("area_m2 > 100".into()),
        note: None,
        secret: new_secret(),
        token: None,
        state: State::Active,
        failures: 0,
        created_at: now,
    };
    store.put_subscription(&sub).await.expect("put");
    assert_eq!(store.subscriptions().await.expect("read"), vec![sub.clone()]);
    sub.token = Some("t".into());
    sub.failures = 2;
    assert!(store.update_subscription(&sub).await.expect("update"));
    assert_eq!(store.subscriptions().await.expect("read"), vec![sub.clone()]);
    let later = |s: i64| now + chrono::Duration::seconds(s);
    assert!(store.lease_subscription("a1", "one", now, later(30)).await.expect("lease"));
    assert!(!store.lease_subscription("a1", "two", later(1), later(31)).await.expect("lease"), "held by another");
    assert!(store.lease_subscription("a1", "one", later(1), later(31)).await.expect("lease"), "kept by its holder");
    assert!(store.lease_subscription("a1", "two", later(32), later(62)).await.expect("lease"), "taken once lapsed");
    let letter = |delivery: &str| DeadLetter {
        id: 0,
        subscription: "a1".into(),
        delivery: delivery.into(),
        body: "{\"changes\":[]}".into(),
        attempts: 5,
        error: "refused".into(),
        failed_at: now,
        replayed_at: None,
    };
    let first = store.add_dead_letter(&letter("d1")).await.expect("dead letter");
    let second = store.add_dead_letter(&letter("d2")).await.expect("dead letter");
    assert!(second > first);
    store.mark_replayed(first, later(5)).await.expect("replayed");
    let kept = store.dead_letters("a1").await.expect("read");
    assert_eq!(
        kept.iter().map(|d| (d.id, d.delivery.as_str())).collect::<Vec<_>>(),
        vec![(first, "d1"), (second, "d2")]
    );
    assert!(kept[0].replayed_at.is_some() && kept[1].replayed_at.is_none());
    assert!(store.delete_subscription("a1").await.expect("delete"));
    assert!(!store.update_subscription(&sub).await.expect("update"), "a deleted subscription stays deleted");
    assert!(store.subscriptions().await.expect("read").is_empty());
}

/// A followed scope is read back whole by its agency and fingerprint, by no other agency, and
/// kept once (remembering it again changes nothing).
async fn followed_scopes_are_kept_by_agency_and_fingerprint(store: AnyStore) {
    use landdb_access::{Area, FollowedScope};
    use landdb_store::AccessStore;
    let communes = FollowedScope { area: Area::Communes { codes: vec!["20194".into()] }, personal_data: true };
    let polygon = FollowedScope {
        area: Area::Polygon { wkt: "POLYGON((108 16, 108.1 16, 108.1 16.1, 108 16))".into() },
        personal_data: false,
    };
    assert_ne!(communes.fingerprint(), polygon.fingerprint());
    for s in [&communes, &polygon, &communes] {
        store.remember_scope("tax", s).await.expect("remember");
    }
    assert_eq!(store.remembered_scope("tax", communes.fingerprint()).await.expect("read"), Some(communes.clone()));
    assert_eq!(store.remembered_scope("tax", polygon.fingerprint()).await.expect("read"), Some(polygon.clone()));
    assert_eq!(store.remembered_scope("police", communes.fingerprint()).await.expect("read"), None);
    assert_eq!(store.remembered_scope("tax", 7).await.expect("read"), None);
    // Fingerprints use all 64 bits: the top one too.
    let mut high = communes.clone();
    for n in 0..64 {
        high.area = Area::Communes { codes: vec![format!("{:05}", 20_000 + n)] };
        if high.fingerprint() >= 1 << 63 {
            break;
        }
    }
    assert!(high.fingerprint() >= 1 << 63);
    store.remember_scope("tax", &high).await.expect("remember");
    assert_eq!(store.remembered_scope("tax", high.fingerprint()).await.expect("read"), Some(high));
}

/// The first secret asked for is kept; later asks (with other fresh bytes) get it.
async fn the_server_secret_is_made_once(store: AnyStore) {
    use landdb_store::AccessStore;
    let first = store.secret("feed-token", [1; 32]).await.expect("secret");
    assert_eq!(first, [1; 32]);
    assert_eq!(store.secret("feed-token", [2; 32]).await.expect("secret"), first);
    assert_eq!(store.secret("other", [3; 32]).await.expect("secret"), [3; 32]);
}

/// Lineage read forwards for several parents in one call: a split's two children, a merge's one.
async fn children_are_found_for_many_parents_at_once(store: AnyStore) {
    let mut b = store.begin_batch(batch("parents")).await.expect("begin");
    let ids = b
        .insert(&[
            parcel("20194", "1", "1", 108.2, 16.0),
            parcel("20194", "1", "2", 108.21, 16.0),
            parcel("20194", "1", "3", 108.22, 16.0),
        ])
        .await
        .expect("insert");
    b.commit(serde_json::json!({})).await.expect("commit");
    let mut b = store.begin_batch(batch("split and merge")).await.expect("begin");
    let a = b.supersede(&parcel("20194", "1", "1a", 108.2, 16.0), &[ids[0]]).await.expect("split");
    let c = b.supersede(&parcel("20194", "1", "1b", 108.2001, 16.0), &[ids[0]]).await.expect("split");
    let m = b.supersede(&parcel("20194", "1", "23", 108.21, 16.0), &[ids[1], ids[2]]).await.expect("merge");
    b.commit(serde_json::json!({})).await.expect("commit");
    let mut found = store.children_of(&ids).await.expect("children");
    found.sort();
    let mut expected = vec![(ids[0], a), (ids[0], c), (ids[1], m), (ids[2], m)];
    expected.sort();
    assert_eq!(found, expected);
    assert!(store.children_of(&[]).await.expect("none").is_empty());
}

/// Every current version, read page by page.
async fn all_current(store: &AnyStore, page_size: usize) -> Vec<landdb_model::ParcelVersion> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.current_page(after, page_size).await.expect("page");
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        all.extend(page);
    }
    all
}

fn batch(source: &str) -> NewBatch {
    NewBatch { source: source.into(), province_code: Some("48".into()), content_hash: None, mode: "append".into() }
}

async fn round_trip_is_exact(store: AnyStore) {
    let original = parcel("20203", "12", "345", 108.206_003_246_647_33, 16.077_218_699_213_272);
    let mut b = store.begin_batch(batch("round-trip.geojson")).await.expect("begin");
    let ids = b.insert(std::slice::from_ref(&original)).await.expect("insert");
    let info = b.commit(serde_json::json!({ "input": 1 })).await.expect("commit");
    assert_eq!(info.summary["input"], 1);

    let stored = store.version(ids[0]).await.expect("read").expect("stored");
    let mut expected = original.clone();
    expected.right_holders.clear(); // personal data is only read on request
    assert_eq!(stored.parcel, expected, "every field, geometry bit for bit, Vietnamese text intact");
    assert!(stored.is_current());
    assert_eq!(stored.batch, info.id);
    assert!(stored.lineage.is_empty());
    assert_eq!(store.right_holders(ids[0]).await.expect("holders"), original.right_holders);

    let many = store.versions(&[ids[0], VersionId(ids[0].0 + 1_000)]).await.expect("read many");
    assert_eq!(many, std::slice::from_ref(&stored), "one round trip for many; unknown IDs left out");

    let by_key = store.current_by_key(&original.key).await.expect("read").expect("found by key");
    assert_eq!(by_key.id, ids[0]);
    let by_id = store.current_by_national_id(&original.national_id).await.expect("read");
    assert_eq!(by_id.iter().map(|v| v.id).collect::<Vec<_>>(), ids);
    assert_eq!(store.count_current().await.expect("count"), 1);
}

async fn history_and_lineage_of_update_split_and_merge(store: AnyStore) {
    let a = parcel("20203", "1", "10", 108.2, 16.07);
    let mut b = store.begin_batch(batch("v1")).await.expect("begin");
    let a_id = b.insert(std::slice::from_ref(&a)).await.expect("insert")[0];
    b.commit(serde_json::json!({})).await.expect("commit");

    // Update: a new version of the same parcel (area corrected).
    let mut a2 = a.clone();
    a2.measured_area_m2 = Some(402.0);
    let mut b = store.begin_batch(batch("v2")).await.expect("begin");
    let a2_id = b.supersede(&a2, &[a_id]).await.expect("supersede");
    b.commit(serde_json::json!({})).await.expect("commit");

    let history = store.history(&a.key).await.expect("history");
    assert_eq!(history.iter().map(|v| v.id).collect::<Vec<_>>(), [a_id, a2_id]);
    assert_eq!(history[0].valid_to, Some(history[1].valid_from), "no gap, no overlap in the validity periods");
    assert!(history[1].is_current());
    assert_eq!(history[1].lineage, [a_id]);
    assert_eq!(history[0].parcel.measured_area_m2, Some(401.25), "the old version keeps its values");

    // Split: two new parcels from one.
    let left = parcel("20203", "1", "10a", 108.2, 16.07);
    let right = parcel("20203", "1", "10b", 108.2002, 16.07);
    let mut b = store.begin_batch(batch("split")).await.expect("begin");
    let l_id = b.supersede(&left, &[a2_id]).await.expect("split, first part");
    let r_id = b.supersede(&right, &[a2_id]).await.expect("split, second part");
    b.commit(serde_json::json!({})).await.expect("commit");
    assert_eq!(store.successors(a2_id).await.expect("successors"), [l_id, r_id]);
    assert!(store.current_by_key(&a.key).await.expect("read").is_none(), "the split parcel is retired");

    // Merge: one parcel from two.
    let merged = parcel("20203", "1", "11", 108.2, 16.07);
    let mut b = store.begin_batch(batch("merge")).await.expect("begin");
    let m_id = b.supersede(&merged, &[r_id, l_id]).await.expect("merge");
    b.commit(serde_json::json!({})).await.expect("commit");
    let m = store.version(m_id).await.expect("read").expect("stored");
    assert_eq!(m.lineage, [l_id, r_id]);
    assert_eq!(store.count_current().await.expect("count"), 1);
    let left_now = store.version(l_id).await.expect("read").expect("kept");
    assert!(!left_now.is_current(), "history is kept, not deleted");
}

async fn which_parcel_was_here_on_a_date(store: AnyStore) {
    use geo::polygon;
    let square = |x: f64, size: f64| {
        geo::MultiPolygon(vec![
            polygon![(x: x, y: 16.0), (x: x + size, y: 16.0), (x: x + size, y: 16.0 + size), (x: x, y: 16.0 + size)],
        ])
    };
    // A parcel, then a boundary correction that shrinks it, then a neighbour where it was.
    let a = landdb_tests::fixtures::with_geometry("20203", "1", "10", square(108.2, 0.0002));
    let mut b = store.begin_batch(batch("v1")).await.expect("begin");
    let a_id = b.insert(std::slice::from_ref(&a)).await.expect("insert")[0];
    let t1 = b.effective_at();
    b.commit(serde_json::json!({})).await.expect("commit");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let smaller = landdb_tests::fixtures::with_geometry("20203", "1", "10", square(108.2, 0.0001));
    let neighbour = landdb_tests::fixtures::with_geometry("20203", "1", "11", square(108.2001, 0.0001));
    let mut b = store.begin_batch(batch("v2")).await.expect("begin");
    let a2_id = b.supersede(&smaller, &[a_id]).await.expect("supersede");
    let n_id = b.insert(std::slice::from_ref(&neighbour)).await.expect("insert")[0];
    let t2 = b.effective_at();
    b.commit(serde_json::json!({})).await.expect("commit");

    let ids = |v: Vec<landdb_model::ParcelVersion>| v.into_iter().map(|v| v.id).collect::<Vec<_>>();
    let between = t1 + (t2 - t1) / 2;
    let (x, y) = (108.200_15, 16.000_05); // in the first square, in the neighbour later
    assert_eq!(ids(store.at_point_on(x, y, between).await.expect("read")), [a_id]);
    assert_eq!(ids(store.at_point_on(x, y, t2).await.expect("read")), [n_id]);
    assert!(
        store.at_point_on(x, y, t1 - chrono::Duration::seconds(1)).await.expect("read").is_empty(),
        "nothing before"
    );
    // On the edge both versions of 2 share with the neighbour: both, as ST_Intersects says.
    assert_eq!(ids(store.at_point_on(108.2001, 16.000_05, t2).await.expect("read")), [a2_id, n_id]);
}

async fn withdrawn_versions_leave_no_trace(store: AnyStore) {
    let a = parcel("20203", "1", "10", 108.2, 16.07);
    let mut b = store.begin_batch(batch("v1")).await.expect("begin");
    let a_id = b.insert(std::slice::from_ref(&a)).await.expect("insert")[0];
    b.commit(serde_json::json!({})).await.expect("commit");
    let head = store.feed_head().await.expect("head");

    // A batch inserts two parcels and updates `a`, then takes back one insert and the update.
    let kept = parcel("20203", "1", "11", 108.2002, 16.07);
    let dropped = parcel("20203", "1", "12", 108.2004, 16.07);
    let mut a2 = a.clone();
    a2.measured_area_m2 = Some(402.0);
    let mut b = store.begin_batch(batch("v2")).await.expect("begin");
    let ids = b.insert(&[kept.clone(), dropped.clone()]).await.expect("insert");
    let a2_id = b.supersede(&a2, &[a_id]).await.expect("supersede");
    let back = b.withdraw(&[ids[1], a2_id]).await.expect("withdraw");
    assert_eq!(back, [dropped.clone(), a2.clone()], "the parcels come back whole, right holders included");
    assert!(matches!(b.withdraw(&[a_id]).await, Err(StoreError::NotInBatch(v)) if v == a_id), "only this batch's own");
    b.commit(serde_json::json!({})).await.expect("commit");

    assert!(store.version(ids[1]).await.expect("read").is_none());
    assert!(store.version(a2_id).await.expect("read").is_none());
    let a_now = store.current_by_key(&a.key).await.expect("read").expect("a is current again");
    assert_eq!(a_now.id, a_id);
    assert!(a_now.valid_to.is_none());
    assert!(store.current_by_key(&dropped.key).await.expect("read").is_none());
    let changes = store.changes_since(head, 100).await.expect("feed");
    assert_eq!(changes.iter().map(|c| c.version).collect::<Vec<_>>(), [ids[0]], "the feed reports only what stayed");
    assert_eq!(store.count_current().await.expect("count"), 2);
}

async fn change_feed_is_ordered_and_resumable(store: AnyStore) {
    assert_eq!(store.feed_head().await.expect("head"), FeedPosition(0));
    let parcels: Vec<_> =
        (0..3).map(|i| parcel("20206", "2", &i.to_string(), 108.21 + f64::from(i) * 0.001, 16.06)).collect();
    let mut b = store.begin_batch(batch("first")).await.expect("begin");
    let ids = b.insert(&parcels).await.expect("insert");
    let first = b.commit(serde_json::json!({})).await.expect("commit");

    let mut b = store.begin_batch(batch("second")).await.expect("begin");
    let updated = b.supersede(&parcels[1], &[ids[1]]).await.expect("supersede");
    b.retire(&[ids[2]]).await.expect("retire");
    let second = b.commit(serde_json::json!({})).await.expect("commit");

    let feed = store.changes_since(FeedPosition(0), 100).await.expect("feed");
    let seen: Vec<(ChangeKind, VersionId)> = feed.iter().map(|c| (c.kind, c.version)).collect();
    assert_eq!(
        seen,
        [
            (ChangeKind::Created, ids[0]),
            (ChangeKind::Created, ids[1]),
            (ChangeKind::Created, ids[2]),
            (ChangeKind::Retired, ids[1]),
            (ChangeKind::Retired, ids[2]),
            (ChangeKind::Created, updated),
        ]
    );
    assert!(feed.windows(2).all(|w| w[0].position < w[1].position), "positions increase");
    assert!(feed[..3].iter().all(|c| c.batch == first.id) && feed[3..].iter().all(|c| c.batch == second.id));
    assert_eq!(feed[0].national_id, parcels[0].national_id);
    assert_eq!(store.feed_head().await.expect("head"), feed[5].position);

    // A follower that stopped after the first batch resumes exactly where it was.
    let resumed = store.changes_since(feed[2].position, 100).await.expect("feed");
    assert_eq!(resumed, feed[3..]);
    let paged = store.changes_since(feed[0].position, 2).await.expect("feed");
    assert_eq!(paged, feed[1..3]);
    assert!(store.changes_since(feed[5].position, 100).await.expect("feed").is_empty());
}

async fn a_current_parcel_is_never_silently_overwritten(store: AnyStore) {
    let original = parcel("20209", "3", "7", 108.22, 16.05);
    let mut b = store.begin_batch(batch("first")).await.expect("begin");
    b.insert(std::slice::from_ref(&original)).await.expect("insert");
    b.commit(serde_json::json!({})).await.expect("commit");

    let mut impostor = original.clone();
    impostor.address = Some("địa chỉ khác".into());
    let mut b = store.begin_batch(batch("second")).await.expect("begin");
    let err = b.insert(std::slice::from_ref(&impostor)).await.expect_err("second current version refused");
    match &err {
        StoreError::CurrentParcelExists { key } => assert_eq!(key, "20209/3/7"),
        other => panic!("expected CurrentParcelExists, got {other}"),
    }
    assert!(err.to_string().contains("20209/3/7"), "{err}");
    assert!(b.commit(serde_json::json!({})).await.is_err(), "a failed batch cannot be committed");

    let current = store.current_by_key(&original.key).await.expect("read").expect("still there");
    assert_eq!(current.parcel.address, original.address);

    // A duplicate key inside one upload is refused the same way.
    let twin = parcel("20209", "3", "8", 108.23, 16.05);
    let mut b = store.begin_batch(batch("twins")).await.expect("begin");
    assert!(matches!(b.insert(&[twin.clone(), twin]).await, Err(StoreError::CurrentParcelExists { .. })));
    b.rollback().await.expect("rollback");
    assert_eq!(store.count_current().await.expect("count"), 1);
}

async fn a_failed_batch_leaves_the_store_as_it_was(store: AnyStore) {
    let kept = parcel("20212", "1", "1", 108.19, 16.04);
    let mut b = store.begin_batch(batch("kept")).await.expect("begin");
    let kept_id = b.insert(std::slice::from_ref(&kept)).await.expect("insert")[0];
    b.commit(serde_json::json!({})).await.expect("commit");
    let head = store.feed_head().await.expect("head");

    let many: Vec<_> = (0..200).map(|i| parcel("20212", "2", &i.to_string(), 108.19, 16.041)).collect();
    let mut b = store.begin_batch(batch("fails half-way")).await.expect("begin");
    let failed_batch = b.id();
    b.insert(&many).await.expect("first part");
    b.retire(&[kept_id]).await.expect("retire");
    assert!(b.insert(std::slice::from_ref(&many[17])).await.is_err(), "duplicate key fails the batch");
    b.rollback().await.expect("rollback");

    assert_eq!(store.count_current().await.expect("count"), 1);
    assert!(store.current_by_key(&kept.key).await.expect("read").is_some(), "the retirement was undone");
    assert_eq!(store.feed_head().await.expect("head"), head, "nothing reached the feed");
    assert!(store.batch(failed_batch).await.expect("read").is_none(), "no trace of the batch");
}

async fn an_uncommitted_batch_is_invisible(store: AnyStore) {
    let p = parcel("20215", "4", "4", 108.18, 16.03);
    let mut b = store.begin_batch(batch("pending")).await.expect("begin");
    b.insert(std::slice::from_ref(&p)).await.expect("insert");
    assert!(store.current_by_key(&p.key).await.expect("read").is_none(), "not visible before commit");
    assert_eq!(store.feed_head().await.expect("head"), FeedPosition(0));
    drop(b); // as when the process dies mid-batch
    // Let the pool finish the implicit rollback of the dropped transaction.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(store.current_by_key(&p.key).await.expect("read").is_none());
    let mut b = store.begin_batch(batch("again")).await.expect("begin after a dropped batch");
    b.insert(std::slice::from_ref(&p)).await.expect("the key is free");
    b.commit(serde_json::json!({})).await.expect("commit");
    assert_eq!(store.count_current().await.expect("count"), 1);
}

async fn only_current_versions_can_be_superseded(store: AnyStore) {
    let p = parcel("20218", "5", "5", 108.17, 16.02);
    let mut b = store.begin_batch(batch("v1")).await.expect("begin");
    let v1 = b.insert(std::slice::from_ref(&p)).await.expect("insert")[0];
    b.commit(serde_json::json!({})).await.expect("commit");
    let mut b = store.begin_batch(batch("v2")).await.expect("begin");
    b.supersede(&p, &[v1]).await.expect("supersede");
    b.commit(serde_json::json!({})).await.expect("commit");

    let mut b = store.begin_batch(batch("stale")).await.expect("begin");
    let err = b.supersede(&p, &[v1]).await.expect_err("v1 is no longer current");
    assert!(matches!(err, StoreError::NotCurrent(id) if id == v1), "{err}");
    assert!(matches!(b.retire(&[VersionId(987_654)]).await, Err(StoreError::NotCurrent(_))));
    b.rollback().await.expect("rollback");
}

async fn paging_visits_every_current_parcel_once(store: AnyStore) {
    let parcels: Vec<_> = (0..57)
        .map(|i| parcel("20221", &(i / 10).to_string(), &i.to_string(), 108.1 + f64::from(i) * 0.0003, 16.0))
        .collect();
    let mut b = store.begin_batch(batch("many")).await.expect("begin");
    let ids = b.insert(&parcels).await.expect("insert");
    b.retire(&ids[..5]).await.expect("retire five");
    b.commit(serde_json::json!({})).await.expect("commit");

    let seen: Vec<VersionId> = all_current(&store, 10).await.iter().map(|v| v.id).collect();
    assert_eq!(seen, ids[5..]);
}

async fn re_upload_is_recognised_by_content_hash(store: AnyStore) {
    let mut new = batch("commune-20225.zip");
    new.content_hash = Some("sha256:abc123".into());
    let b = store.begin_batch(new.clone()).await.expect("begin");
    let info = b.commit(serde_json::json!({ "accepted": 0 })).await.expect("commit");
    let found = store.batch_by_content_hash("sha256:abc123").await.expect("read").expect("found");
    assert_eq!(found, info);
    assert!(found.committed_at.is_some_and(|t| t >= found.started_at));
    assert!(store.batch_by_content_hash("sha256:other").await.expect("read").is_none());
}

/// The latest committed batch of a source: not another source's, not one still open.
async fn the_latest_batch_of_a_source_is_found(store: AnyStore) {
    assert!(store.latest_batch_of("landdb sync").await.expect("read").is_none());
    let first = store.begin_batch(batch("landdb sync")).await.expect("begin");
    let first = first.commit(serde_json::json!({ "page": 1 })).await.expect("commit");
    let second = store.begin_batch(batch("landdb sync")).await.expect("begin");
    let second = second.commit(serde_json::json!({ "page": 2 })).await.expect("commit");
    let other = store.begin_batch(batch("an upload")).await.expect("begin");
    other.commit(serde_json::json!({})).await.expect("commit");
    let open = store.begin_batch(batch("landdb sync")).await.expect("begin");
    let found = store.latest_batch_of("landdb sync").await.expect("read").expect("found");
    assert_eq!(found, second);
    assert!(second.id > first.id);
    open.rollback().await.expect("rollback");
}

async fn feed_waiter_wakes_after_a_commit(store: AnyStore) {
    let mut waiter = store.feed_waiter().await.expect("waiter");
    let writer = store.clone();
    let started = std::time::Instant::now();
    let commit = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut b = writer.begin_batch(batch("live")).await.expect("begin");
        b.insert(&[parcel("20227", "1", "1", 108.16, 16.01)]).await.expect("insert");
        b.commit(serde_json::json!({})).await.expect("commit");
    });
    let mut position = FeedPosition(0);
    while position == FeedPosition(0) {
        assert!(started.elapsed() < Duration::from_secs(5), "the commit never reached the follower");
        waiter.wait(Duration::from_secs(1)).await.expect("wait");
        position = store.changes_since(position, 10).await.expect("feed").last().map_or(position, |c| c.position);
    }
    commit.await.expect("writer");
    assert!(started.elapsed() < Duration::from_millis(1300), "seen within a second of the commit");
}

async fn migrations_are_idempotent(store: AnyStore) {
    let mut b = store.begin_batch(batch("before")).await.expect("begin");
    b.insert(&[parcel("20230", "1", "1", 108.15, 16.0)]).await.expect("insert");
    b.commit(serde_json::json!({})).await.expect("commit");
    // Opening the same database again re-runs the migrator: nothing changes, nothing is lost.
    let again = AnyStore::open(&url_of(&store).await).await.expect("reopen");
    assert_eq!(again.count_current().await.expect("count"), 1);
}

/// Leases of a daily quota from two handles on one database (two server processes), at once:
/// never more than the quota between them; what is given back can be leased again; the day's
/// count starts from the audit log and days do not share a count.
async fn a_quota_is_one_count_for_every_process(store: AnyStore) {
    use landdb_access::limits::{QuotaLease, day_of, day_start};
    use landdb_store::AccessStore;
    let other = AnyStore::open(&url_of(&store).await).await.expect("second handle");
    let now = chrono::Utc::now();
    let (day, _) = day_of(now);
    let lease = |need: u64, want: u64| QuotaLease::today("tax", now, need, want, 1_000);
    let mut running = tokio::task::JoinSet::new();
    for i in 0..40u64 {
        let handle = if i % 2 == 0 { store.clone() } else { other.clone() };
        let lease = lease(7 + i % 3, 30);
        running.spawn(async move { handle.lease_quota(&lease).await.expect("lease").granted });
    }
    let granted: u64 = running.join_all().await.into_iter().sum();
    // 33 leases of 30, then one of the last 10 (each needs 7 to 9), then nothing.
    assert_eq!(granted, 1_000, "forty leases of up to 30 fill a quota of 1,000 exactly, never past it");
    assert_eq!(store.lease_quota(&lease(1, 1)).await.expect("lease").granted, 0, "nothing is left");
    other.return_quota("tax", day, 12).await.expect("give back");
    let again = store.lease_quota(&lease(10, 50)).await.expect("lease");
    assert_eq!((again.granted, again.left), (12, 0), "what was given back, and no more");
    let tomorrow = day.succ_opt().expect("a next day");
    let fresh = QuotaLease { day: tomorrow, since: day_start(now) + chrono::Duration::days(1), ..lease(10, 10) };
    assert_eq!(other.lease_quota(&fresh).await.expect("lease").left, 990, "a new day, a new count");
}

/// Where `store` is, to open it again (as another process would).
async fn url_of(store: &AnyStore) -> DatabaseUrl {
    match store {
        AnyStore::Postgres(s) => DatabaseUrl::Postgres(pg_url(s).await),
        AnyStore::Sqlite(s) => DatabaseUrl::Sqlite(sqlite_path(s).await),
    }
}

async fn pg_url(store: &landdb_store::postgres::PgStore) -> String {
    let db: String = sqlx::query_scalar("SELECT current_database()").fetch_one(store.pool()).await.expect("name");
    let admin = landdb_tests::admin_url();
    format!("{}/{db}", admin.rsplit_once('/').map_or(admin.as_str(), |(p, _)| p))
}

async fn sqlite_path(store: &landdb_store::sqlite::SqliteStore) -> std::path::PathBuf {
    let file: String = sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
        .fetch_one(store.pool())
        .await
        .expect("path");
    file.into()
}

/// Two batches committing in the opposite order to the one they started in: the feed must list
/// them in commit order, or a follower reading between the commits would skip a change for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgis_feed_order_is_commit_order() {
    let (store, _guard) = postgis().await;
    let mut early = store.begin_batch(batch("starts first")).await.expect("begin");
    early.insert(&[parcel("20233", "1", "1", 108.14, 16.0)]).await.expect("insert");
    let mut late = store.begin_batch(batch("commits first")).await.expect("begin");
    late.insert(&[parcel("20233", "1", "2", 108.141, 16.0)]).await.expect("insert");
    let late = late.commit(serde_json::json!({})).await.expect("commit");
    let seen_between = store.changes_since(FeedPosition(0), 10).await.expect("feed");
    let early = early.commit(serde_json::json!({})).await.expect("commit");
    let feed = store.changes_since(FeedPosition(0), 10).await.expect("feed");
    assert_eq!(feed.iter().map(|c| c.batch).collect::<Vec<_>>(), [late.id, early.id]);
    assert_eq!(seen_between, feed[..1], "what a follower saw between the commits is a prefix of the feed");
}

#[tokio::test]
async fn unreachable_postgres_says_what_to_do_without_the_password() {
    let url = DatabaseUrl::parse("postgres://landdb:hunter2@127.0.0.1:1/landdb").expect("url");
    let err = AnyStore::open(&url).await.expect_err("nothing listens on port 1");
    let message = err.to_string();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{message}");
    assert!(message.contains("tools/setup") && message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn a_missing_database_is_named() {
    let admin = landdb_tests::admin_url();
    let url = format!("{}/landdb_no_such_db", admin.rsplit_once('/').map_or(admin.as_str(), |(p, _)| p));
    let err = AnyStore::open(&DatabaseUrl::parse(&url).expect("url")).await.expect_err("no such database");
    assert!(matches!(&err, StoreError::NoSuchDatabase { database, .. } if database == "landdb_no_such_db"), "{err}");
}

/// Real parcels (two Đà Nẵng wards) through the bulk path into both stores: every one comes back
/// with its geometry bit for bit and its attributes intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_parcels_round_trip_through_both_stores() {
    let Some(dir) = landdb_tests::danang_dir() else { return };
    let reference = landdb_model::ReferenceData::embedded().expect("reference data");
    let files = [dir.join("20248.geojson"), dir.join("20239.geojson")];
    let parcels = landdb_ingest::load::accepted_parcels(&reference, &files, &std::env::temp_dir()).expect("readable");
    assert!(parcels.len() > 4_000, "{} parcels", parcels.len());
    for (store, _guard) in [postgis().await, embedded().await] {
        let batch = landdb_ingest::load::store_parcels(&store, "danang".into(), &parcels, serde_json::json!({}))
            .await
            .expect("bulk load");
        let stored = all_current(&store, 2_000).await;
        assert_eq!(stored.len(), parcels.len(), "{}", store.kind());
        for (version, parcel) in stored.iter().zip(&parcels) {
            assert_eq!(&version.parcel, parcel, "{} {}", store.kind(), parcel.key);
            assert_eq!(version.batch, batch.id);
        }
    }
}

/// Agencies, keys and the audit chain: kept as given, every change moving the generation that
/// running servers poll, entries chained across batches and found by agency and by disclosure.
async fn agencies_keys_and_the_audit_chain_are_kept(store: AnyStore) {
    use landdb_access::{Agency, Area, AuditEvent, Limits, Policy, Role};
    use landdb_store::{AccessStore, AuditQuery};
    let g0 = store.access_generation().await.expect("generation");
    let now = chrono::Utc::now();
    let mut agency = Agency {
        name: "tax-danang".into(),
        title: "Cục Thuế Đà Nẵng".into(),
        role: Role::Reader,
        policy: Policy {
            area: Area::Communes { codes: vec!["20194".into()] },
            personal_data: false,
            operations: Role::Reader.default_operations(),
            limits: Limits {
                requests_per_second: Some(10.0),
                features_per_response: None,
                features_per_day: Some(1000),
            },
            valid_from: None,
            valid_until: Some(now + chrono::Duration::days(365)),
            purpose: "Luật Quản lý thuế 2019".into(),
        },
        created_at: AuditEvent::new_at(now),
    };
    store.put_agency(&agency).await.expect("agency");
    agency.policy.personal_data = true;
    store.put_agency(&agency).await.expect("replaced");
    assert_eq!(store.agencies().await.expect("agencies"), vec![agency.clone()]);
    let mut key = landdb_access::key::generate("tax-danang", AuditEvent::new_at(now), None).record;
    store.put_key(&key).await.expect("key");
    assert!(store.end_key(&key.id, Some(AuditEvent::new_at(now)), None).await.expect("revoked"));
    assert!(!store.end_key("no-such-key", Some(now), None).await.expect("nothing"));
    key.revoked_at = Some(AuditEvent::new_at(now));
    assert_eq!(store.keys().await.expect("keys"), vec![key.clone()]);
    assert!(store.access_generation().await.expect("generation") >= g0 + 4);

    let event = |i: u64, personal: Vec<i64>| AuditEvent {
        at: AuditEvent::new_at(now + chrono::Duration::seconds(i as i64)),
        agency: if i.is_multiple_of(2) { "tax-danang".into() } else { "police".into() },
        key_id: key.id.as_str().into(),
        method: "GET".into(),
        endpoint: "/collections/parcels/items".into(),
        params: format!("limit={i}"),
        purpose: "Luật Quản lý thuế 2019".into(),
        status: 200,
        parcels: i,
        communes: if personal.is_empty() { Vec::new() } else { vec![20_281] },
        versions: personal.clone(),
        personal,
    };
    store.append_audit(&[event(1, vec![]), event(2, vec![7, 8])]).await.expect("first batch");
    // A version named twice in one entry (the disclosure index takes it once).
    store.append_audit(&[event(3, vec![8, 8]), event(4, vec![])]).await.expect("second batch");
    let all = store.audit_entries(&AuditQuery { limit: 100, ..AuditQuery::default() }).await.expect("entries");
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert_eq!(all[1].event, event(2, vec![7, 8]), "read back as written");
    let head = store.audit_head().await.expect("head");
    assert_eq!(landdb_access::audit::verify(all.clone(), head).expect("one chain over both batches").entries, 4);
    let saw_8 = store
        .audit_entries(&AuditQuery { disclosed: Some(vec![8]), limit: 100, ..AuditQuery::default() })
        .await
        .expect("entries");
    assert_eq!(saw_8.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
    // Through the communes of what was disclosed (the PostGIS block index), exactly.
    for (communes, seqs) in [(vec![20_281], vec![2, 3]), (vec![20_282], vec![])] {
        let q = AuditQuery { received: Some(vec![8]), communes: Some(communes), limit: 100, ..AuditQuery::default() };
        let found: Vec<i64> = store.audit_entries(&q).await.expect("entries").iter().map(|e| e.seq).collect();
        assert_eq!(found, seqs);
    }
    let tax = store
        .audit_entries(&AuditQuery {
            agency: Some("tax-danang".into()),
            since: Some(now + chrono::Duration::seconds(3)),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .expect("entries");
    assert_eq!(tax.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4]);
    assert_eq!(store.parcels_taken("tax-danang", now).await.expect("taken"), 6);
    // Pages run across batches, and a period ends before its end.
    let page = |after, limit, until| {
        let store = store.clone();
        async move {
            let q = AuditQuery { after, limit, until, ..AuditQuery::default() };
            store.audit_entries(&q).await.expect("entries").iter().map(|e| e.seq).collect::<Vec<_>>()
        }
    };
    assert_eq!(page(1, 2, None).await, vec![2, 3]);
    assert_eq!(page(3, 2, None).await, vec![4]);
    assert_eq!(page(0, 100, Some(now + chrono::Duration::seconds(3))).await, vec![1, 2]);
}

/// A log written before entries were kept in blocks (migration 5) is carried over whole: the
/// same entries, the same hashes, one chain that the blocks written afterwards continue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgis_audit_entries_written_one_a_row_move_into_blocks() {
    let db = PostgisDb::create().await.expect("throwaway PostGIS database");
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
    // The schema as it was: the first four migrations, as the store has them.
    use landdb_access::AuditEvent;
    use landdb_store::{AccessStore, AuditQuery};
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let first_four = [
        (1, "parcels", include_str!("../../migrations/postgres/0001_parcels.sql")),
        (2, "quarantine", include_str!("../../migrations/postgres/0002_quarantine.sql")),
        (3, "lighter bulk load", include_str!("../../migrations/postgres/0003_lighter_bulk_load.sql")),
        (4, "access", include_str!("../../migrations/postgres/0004_access.sql")),
    ];
    let migrations = first_four
        .into_iter()
        .map(|(v, name, sql)| Migration::new(v, name.into(), MigrationType::Simple, sql.into(), false))
        .collect();
    let before = Migrator { migrations: std::borrow::Cow::Owned(migrations), ..Migrator::DEFAULT };
    before.run(&pool).await.expect("migrate to 4");
    let now = AuditEvent::new_at(chrono::Utc::now());
    let event = |i: i64, personal: Vec<i64>| AuditEvent {
        at: now + chrono::Duration::seconds(i),
        agency: if i == 2 { "công-an".into() } else { "tax".into() },
        key_id: "0123456789abcdef".into(),
        method: "GET".into(),
        endpoint: "/parcels/79/1".into(),
        params: "q=\"đất\"\tx".into(),
        purpose: "Luật Đất đai 2024".into(),
        status: 200,
        parcels: u64::try_from(i).expect("positive"),
        personal,
        versions: Vec::new(),
        communes: Vec::new(),
    };
    // Written as the writer of that schema did: a row an entry, a row a disclosure.
    let mut prev = landdb_access::audit::GENESIS.to_owned();
    let mut old = Vec::new();
    for (i, personal) in [(1, vec![]), (2, vec![42, 7]), (3, vec![])] {
        // Hashed as that writer did: twelve fields, no list of every version.
        use landdb_access::audit::{AuditEntry, Form, entry_hash};
        let e = event(i, personal);
        let hash = entry_hash(i, &e, &prev, Form::PersonalOnly);
        let entry = AuditEntry { seq: i, event: e, prev_hash: prev.clone(), hash, form: Form::PersonalOnly };
        sqlx::query("INSERT INTO audit_entry VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
            .bind(entry.seq)
            .bind(entry.event.at)
            .bind(&*entry.event.agency)
            .bind(&*entry.event.key_id)
            .bind(&entry.event.method)
            .bind(&entry.event.endpoint)
            .bind(&entry.event.params)
            .bind(&*entry.event.purpose)
            .bind(i32::from(entry.event.status))
            .bind(i64::try_from(entry.event.parcels).expect("small"))
            .bind(serde_json::to_string(&entry.event.personal).expect("json"))
            .bind(&entry.prev_hash)
            .bind(&entry.hash)
            .execute(&pool)
            .await
            .expect("an entry");
        for v in &entry.event.personal {
            sqlx::query("INSERT INTO audit_disclosure VALUES ($1, $2)")
                .bind(v)
                .bind(i)
                .execute(&pool)
                .await
                .expect("d");
        }
        prev.clone_from(&entry.hash);
        old.push(entry);
    }
    sqlx::query("INSERT INTO audit_head VALUES (1, 3, $1)").bind(&prev).execute(&pool).await.expect("head");

    let store = AnyStore::open(&DatabaseUrl::parse(&db.url).expect("url")).await.expect("migrate to the end");
    let all = AuditQuery { limit: 100, ..AuditQuery::default() };
    assert_eq!(store.audit_entries(&all).await.expect("entries"), old, "the same entries, hashes included");
    store.append_audit(&[event(4, vec![7])]).await.expect("appended after them");
    let entries = store.audit_entries(&all).await.expect("entries");
    let head = store.audit_head().await.expect("head");
    assert_eq!(landdb_access::audit::verify(entries, head).expect("one chain").entries, 4);
    // The blocks' columns as migration 5 computed them agree with their entries, old and new.
    assert_eq!(store.verify_audit(&mut |_| {}).await.expect("reads").expect("intact, columns too").entries, 4);
    let saw_7 = AuditQuery { disclosed: Some(vec![7]), limit: 100, ..AuditQuery::default() };
    let saw_7: Vec<i64> = store.audit_entries(&saw_7).await.expect("entries").iter().map(|e| e.seq).collect();
    assert_eq!(saw_7, vec![2, 4]);
    assert_eq!(store.parcels_taken("tax", now).await.expect("taken"), 1 + 3 + 4);
    // The view reads the blocks as rows again, for SQL.
    type ViewRow = (i64, chrono::DateTime<chrono::Utc>, String, String, Vec<i64>, String);
    let rows: Vec<ViewRow> =
        sqlx::query_as("SELECT seq, at, agency, params, personal, hash FROM audit_entry ORDER BY seq")
            .fetch_all(&pool)
            .await
            .expect("the view");
    let expected: Vec<_> = store
        .audit_entries(&all)
        .await
        .expect("entries")
        .into_iter()
        .map(|e| (e.seq, e.event.at, e.event.agency.to_string(), e.event.params, e.event.personal, e.hash))
        .collect();
    assert_eq!(rows, expected);
}
