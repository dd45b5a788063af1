//! The access rules over real HTTP, on one PostGIS with the three sample communes and several
//! agencies of different scopes: every endpoint against every rule, positive and negative, the
//! side channels (filter, sortby, properties, counts, next links, tiles, ETags, error texts),
//! limits, key life (revocation, rotation, expiry), confined uploads, and the audit log with its
//! tampering checks.

use std::collections::BTreeSet;
use std::time::Duration;

use geo::Intersects;
use landdb_access::{Area, Limits, Operation, Role};
use landdb_model::{CommuneCode, ReferenceData};
use landdb_store::{AccessStore, AuditQuery};
use landdb_tests::http::{OPERATOR_KEY, Server, agency, client, client_with, get_with, policy, samples, server};
use serde_json::Value;

const OWN: &str = "20194";
const OTHER: &str = "20197";
/// The western part of commune 20197 (and whatever else it meets).
const WEST: &str = "POLYGON((108.20 16.01,108.214 16.01,108.214 16.035,108.20 16.035,108.20 16.01))";

fn province_of(commune: &str) -> String {
    let reference = ReferenceData::embedded().expect("reference");
    reference.province_of(&CommuneCode::parse(commune).expect("code")).expect("province").as_str().to_owned()
}

/// Every feature of every page of `url` (following `next`), with the first page's numberMatched.
async fn all_pages(client: &reqwest::Client, url: &str) -> (Vec<Value>, Option<u64>) {
    let (status, _, first) = get_with(client, url).await;
    assert_eq!(status, 200, "{url}: {first}");
    let matched = first["numberMatched"].as_u64();
    let mut features: Vec<Value> = first["features"].as_array().expect("features").clone();
    let mut page = first;
    while let Some(next) = landdb_tests::http::link(&page, "next").map(str::to_owned) {
        let (status, _, p) = get_with(client, &next).await;
        assert_eq!(status, 200, "{next}: {p}");
        features.extend(p["features"].as_array().expect("features").iter().cloned());
        page = p;
    }
    (features, matched)
}

fn communes(features: &[Value]) -> BTreeSet<String> {
    features.iter().map(|f| f["properties"]["commune"].as_str().expect("commune").to_owned()).collect()
}

/// The version of some current parcel of `commune`, with its key.
fn parcel_of(s: &Server, commune: &str) -> (i64, landdb_model::ParcelKey, (f64, f64)) {
    let view = s.engine.snapshot();
    let code = CommuneCode::parse(commune).expect("code");
    let p = view.in_commune(&code).into_iter().next().expect("a parcel of the commune");
    let centre = polylabel_of(&p.geometry());
    (p.version().0, p.key(), centre)
}

fn polylabel_of(shape: &geo::MultiPolygon<f64>) -> (f64, f64) {
    use geo::InteriorPoint;
    let p = shape.interior_point().expect("interior point");
    (p.x(), p.y())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_valid_key_only_the_landing_page_conformance_and_api_answer() {
    let s = server(&[samples().join("20194.geojson")]).await;
    let (version, key, (lon, lat)) = parcel_of(&s, OWN);
    let anonymous = reqwest::Client::new();
    let bogus = client_with("landdb_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000");
    for path in ["/", "/conformance", "/api", "/health", "/ready"] {
        let (status, _, body) = get_with(&anonymous, &format!("{}{path}", s.base)).await;
        assert_eq!(status, 200, "{path} is open: {body}");
    }
    let closed = [
        "/collections".to_owned(),
        "/collections/parcels".to_owned(),
        "/collections/parcels/queryables".to_owned(),
        "/collections/parcels/items".to_owned(),
        format!("/collections/parcels/items/{version}"),
        format!("/collections/parcels/items/{version}/history"),
        "/collections/parcels/export".to_owned(),
        format!("/parcels/at?lon={lon}&lat={lat}"),
        format!("/parcels/key/{}/{}/{}", key.commune, key.sheet, key.number),
        "/parcels/national-id/20194000000001".to_owned(),
        "/collections/parcels/tiles".to_owned(),
        "/collections/parcels/tiles/WebMercatorQuad/16/29000/52000".to_owned(),
        "/jobs/1".to_owned(),
        "/jobs/1/report".to_owned(),
        "/jobs/1/quarantine".to_owned(),
        "/metrics".to_owned(),
        "/admin/agencies".to_owned(),
        "/admin/audit".to_owned(),
        "/admin/audit/verify".to_owned(),
    ];
    for path in &closed {
        for (who, c) in [("no key", &anonymous), ("an unknown key", &bogus)] {
            let response = c.get(format!("{}{path}", s.base)).send().await.expect("request");
            assert_eq!(response.status().as_u16(), 401, "{path} with {who}");
            assert_eq!(
                response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()),
                Some("Bearer realm=\"landdb\"")
            );
            let body = response.text().await.expect("body");
            assert!(!body.contains(&version.to_string()) || path.contains(&version.to_string()), "{body}");
        }
    }
    let upload = anonymous.post(format!("{}/jobs", s.base)).send().await.expect("post");
    assert_eq!(upload.status().as_u16(), 401);
    // A malformed Authorization header is no key either.
    let odd = anonymous
        .get(format!("{}/collections/parcels/items", s.base))
        .header("authorization", "Basic b3BlcmF0b3I6eA==")
        .send()
        .await
        .expect("request");
    assert_eq!(odd.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agencies_see_their_own_areas_and_fields_and_nothing_else() {
    let s = server(&[samples()]).await;
    let tax = client_with(
        &agency(&s, "tax-one", Role::Reader, policy(Role::Reader, Area::Communes { codes: vec![OWN.into()] }, false))
            .await,
    );
    let mut police_policy = policy(Role::Reader, Area::Provinces { codes: vec![province_of(OWN)] }, true);
    police_policy.operations.insert(Operation::History);
    let police = client_with(&agency(&s, "police-province", Role::Reader, police_policy).await);
    let surveyor = client_with(
        &agency(&s, "survey-west", Role::Surveyor, policy(Role::Surveyor, Area::Polygon { wkt: WEST.into() }, false))
            .await,
    );
    let view = s.engine.snapshot();
    let own_count = view.in_commune(&CommuneCode::parse(OWN).expect("code")).len();
    let west = landdb_access::policy::parse_polygon(WEST).expect("polygon");
    let west_versions: BTreeSet<i64> =
        view.parcels().filter(|p| west.intersects(&p.geometry())).map(|p| p.version().0).collect();
    assert!(!west_versions.is_empty() && west_versions.len() < view.len());

    // Items: only the agency's area, counted and paged within it (next links cannot widen it).
    let items = format!("{}/collections/parcels/items?limit=333", s.base);
    let (features, matched) = all_pages(&tax, &items).await;
    assert_eq!(communes(&features), BTreeSet::from([OWN.to_owned()]));
    assert_eq!((features.len(), matched), (own_count, Some(own_count as u64)));
    let (features, matched) = all_pages(&police, &items).await;
    assert_eq!(features.len(), view.len(), "the province holds all three communes");
    assert_eq!(matched, Some(view.len() as u64));
    let (features, _) = all_pages(&surveyor, &items).await;
    let seen: BTreeSet<i64> = features.iter().map(|f| f["id"].as_i64().expect("id")).collect();
    assert_eq!(seen, west_versions);
    // A box and a filter over the other commune find nothing, and say nothing else.
    let (status, _, page) =
        get_with(&tax, &format!("{}/collections/parcels/items?filter=commune='{OTHER}'", s.base)).await;
    assert_eq!((status, page["numberMatched"].as_u64()), (200, Some(0)), "{page}");
    let extent = "107,15,109,17";
    let (features, matched) =
        all_pages(&tax, &format!("{}/collections/parcels/items?bbox={extent}&limit=500", s.base)).await;
    assert_eq!((communes(&features), matched), (BTreeSet::from([OWN.to_owned()]), Some(own_count as u64)));
    // Sorted pages stay inside too, and a cursor from another agency's page does not widen it.
    let (features, _) =
        all_pages(&tax, &format!("{}/collections/parcels/items?sortby=-area_m2&limit=400", s.base)).await;
    assert_eq!(features.len(), own_count);
    let (other_id, other_key, (lon, lat)) = parcel_of(&s, OTHER);
    // A cursor is no version number: one made up from another commune's version is refused.
    let (status, _, page) =
        get_with(&tax, &format!("{}/collections/parcels/items?after={}&limit=1000", s.base, other_id - 1)).await;
    assert_eq!(status, 400, "{page}");

    // Fields: personal data only where granted; naming it anywhere is refused as unknown.
    let (_, _, page) = get_with(&tax, &format!("{}/collections/parcels/items?limit=5", s.base)).await;
    assert!(page["features"].as_array().expect("features").iter().all(|f| f["properties"].get("address").is_none()));
    let (_, _, page) = get_with(&police, &format!("{}/collections/parcels/items?limit=50", s.base)).await;
    assert!(page["features"].as_array().expect("features").iter().any(|f| f["properties"]["address"].is_string()));
    for side in ["properties=address", "filter=address%20LIKE%20'%25a%25'", "sortby=address"] {
        let (status, _, body) = get_with(&tax, &format!("{}/collections/parcels/items?{side}", s.base)).await;
        assert_eq!(status, 400, "{side}: {body}");
        assert!(body["description"].as_str().expect("description").contains("address"), "{body}");
        let (status, _, _) = get_with(&police, &format!("{}/collections/parcels/items?{side}", s.base)).await;
        assert_eq!(status, 200, "{side} with personal data granted");
    }
    let (_, _, q) = get_with(&tax, &format!("{}/collections/parcels/queryables", s.base)).await;
    assert!(q["properties"].get("address").is_none() && q["properties"].get("commune").is_some(), "{q}");

    // Direct requests for a parcel out of scope: 404, worded as for one that does not exist.
    let missing_id = 999_999_999;
    for (path, missing) in [
        (format!("/collections/parcels/items/{other_id}"), format!("/collections/parcels/items/{missing_id}")),
        (
            format!("/parcels/key/{}/{}/{}", other_key.commune, other_key.sheet, other_key.number),
            format!("/parcels/key/{}/{}/99999", other_key.commune, other_key.sheet),
        ),
    ] {
        let (status, _, body) = get_with(&tax, &format!("{}{path}", s.base)).await;
        let (missing_status, _, missing_body) = get_with(&tax, &format!("{}{missing}", s.base)).await;
        assert_eq!((status, missing_status), (404, 404), "{path}: {body}");
        assert_eq!(body["code"], missing_body["code"]);
        let (status, _, _) = get_with(&police, &format!("{}{path}", s.base)).await;
        assert_eq!(status, 200, "{path} is in the province");
    }
    let national = view.by_version(landdb_model::VersionId(other_id)).expect("parcel").national_id();
    let (status, _, _) = get_with(&tax, &format!("{}/parcels/national-id/{national}", s.base)).await;
    assert_eq!(status, 404);
    let (status, _, found) = get_with(&tax, &format!("{}/parcels/at?lon={lon}&lat={lat}", s.base)).await;
    assert_eq!((status, found["numberMatched"].as_u64()), (200, Some(0)), "{found}");
    let (_, _, found) = get_with(&police, &format!("{}/parcels/at?lon={lon}&lat={lat}", s.base)).await;
    assert_eq!(found["numberMatched"].as_u64(), Some(1));
    let (status, _, _) = get_with(&police, &format!("{}/collections/parcels/items/{other_id}/history", s.base)).await;
    assert_eq!(status, 200);
    let (own_id, _, _) = parcel_of(&s, OWN);
    let (status, _, _) = get_with(&surveyor, &format!("{}/collections/parcels/items/{other_id}/history", s.base)).await;
    assert_eq!(status, 403, "history is not among a surveyor's operations");
    let (status, _, _) = get_with(&tax, &format!("{}/collections/parcels/items/{own_id}", s.base)).await;
    assert_eq!(status, 200);

    // Operations: exports for the surveyor (its area only), not for the tax office.
    let (status, _, body) = get_with(&tax, &format!("{}/collections/parcels/export", s.base)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["description"].as_str().expect("why").contains("export"));
    let (status, _, export) = get_with(&surveyor, &format!("{}/collections/parcels/export", s.base)).await;
    assert_eq!(status, 200);
    let exported: BTreeSet<i64> =
        export["features"].as_array().expect("features").iter().map(|f| f["id"].as_i64().expect("id")).collect();
    assert_eq!(exported, west_versions);
    let (status, _, export) =
        get_with(&surveyor, &format!("{}/collections/parcels/export?commune={OWN}", s.base)).await;
    assert_eq!(status, 200);
    assert!(
        export["features"]
            .as_array()
            .expect("features")
            .iter()
            .all(|f| west_versions.contains(&f["id"].as_i64().expect("id")))
    );
    for path in ["/admin/agencies", "/admin/audit", "/metrics"] {
        let (status, _, _) = get_with(&police, &format!("{}{path}", s.base)).await;
        assert_eq!(status, 403, "{path} is the operator's");
    }
    let upload = tax.post(format!("{}/jobs", s.base)).send().await.expect("post");
    assert_eq!(upload.status().as_u16(), 403, "a reader does not upload");

    // Vector tiles carry only the parcels the agency sees (counted by the audit log).
    let (z, row, col) = (15, 14906, 26233);
    let tile = format!("/collections/parcels/tiles/WebMercatorQuad/{z}/{row}/{col}");
    let bounds = landdb_api::tiles::TileId::new(z, row, col).expect("tile").bounds();
    let in_tile = view.in_box(bounds);
    let own_in_tile = in_tile.iter().filter(|p| p.commune().as_str() == OWN).count() as u64;
    assert!(in_tile.len() as u64 > own_in_tile, "the tile holds other communes' parcels too");
    let bytes = |c: &reqwest::Client| {
        let url = format!("{}{tile}", s.base);
        let c = c.clone();
        async move {
            let r = c.get(url).send().await.expect("tile");
            assert_eq!(r.status().as_u16(), 200);
            r.bytes().await.expect("bytes").len()
        }
    };
    let (tax_tile, police_tile) = (bytes(&tax).await, bytes(&police).await);
    assert!(tax_tile < police_tile, "the tax office's tile holds fewer parcels: {tax_tile} vs {police_tile}");
    s.app.gate.audit.flush().await;
    let tile_entry = |agency: &str| {
        let store = s.store.clone();
        let (agency, tile) = (agency.to_owned(), tile.clone());
        async move {
            let q = AuditQuery { agency: Some(agency), limit: 10_000, ..AuditQuery::default() };
            store
                .audit_entries(&q)
                .await
                .expect("entries")
                .into_iter()
                .find(|e| e.event.endpoint == tile)
                .expect("tile entry")
        }
    };
    assert_eq!(tile_entry("tax-one").await.event.parcels, own_in_tile);
    assert_eq!(tile_entry("police-province").await.event.parcels, in_tile.len() as u64);

    // ETags name the caller's view: one agency's tag is no 304 for another.
    let response = tax.get(&items).send().await.expect("items");
    let tag = response.headers().get("etag").and_then(|v| v.to_str().ok()).expect("etag").to_owned();
    let again = tax.get(&items).header("if-none-match", &tag).send().await.expect("again");
    assert_eq!(again.status().as_u16(), 304);
    let other = police.get(&items).header("if-none-match", &tag).send().await.expect("police");
    assert_eq!(other.status().as_u16(), 200);
    assert_ne!(other.headers().get("etag").and_then(|v| v.to_str().ok()), Some(tag.as_str()));

    // The audit log: who saw what, and whose personal data.
    s.app.gate.audit.flush().await;
    let tax_entries = s
        .store
        .audit_entries(&AuditQuery { agency: Some("tax-one".into()), limit: 10_000, ..AuditQuery::default() })
        .await
        .expect("entries");
    assert!(tax_entries.iter().all(|e| e.event.personal.is_empty() && e.event.purpose.contains("reader")));
    assert!(tax_entries.iter().any(|e| e.event.status == 403 && e.event.endpoint.ends_with("/export")));
    let first_page = tax_entries.iter().find(|e| e.event.params == "limit=333").expect("the first items page");
    assert_eq!(first_page.event.parcels, 333);
    let address_holder = view
        .in_commune(&CommuneCode::parse(OTHER).expect("code"))
        .into_iter()
        .find(|p| p.address().is_some())
        .expect("a parcel with an address")
        .version()
        .0;
    let (_, _, _) = get_with(&police, &format!("{}/collections/parcels/items/{address_holder}", s.base)).await;
    let (_, _, _) = get_with(&tax, &format!("{}/collections/parcels/items/{address_holder}", s.base)).await;
    s.app.gate.audit.flush().await;
    let who = |seen: &Value| -> BTreeSet<String> {
        seen["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["agency"].as_str().expect("agency").to_owned())
            .collect()
    };
    let (status, _, seen) =
        get_with(&client(), &format!("{}/admin/audit?parcel={address_holder}&personal=true", s.base)).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(
        who(&seen),
        BTreeSet::from(["police-province".to_owned()]),
        "only the agency with personal data saw it: {seen}"
    );
    // Every agency that received the parcel: the surveyor's polygon meets it too; the tax office
    // asked, and was told it does not exist.
    let (_, _, seen) = get_with(&client(), &format!("{}/admin/audit?parcel={address_holder}", s.base)).await;
    let received = who(&seen);
    assert!(received.contains("police-province") && !received.contains("tax-one"), "{seen}");
    assert_eq!(received.contains("survey-west"), west_versions.contains(&address_holder), "{seen}");
    let (_, _, verified) = get_with(&client(), &format!("{}/admin/audit/verify", s.base)).await;
    assert_eq!(verified["intact"], true, "{verified}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_429_with_retry_after_and_responses_are_capped() {
    let s = server(&[samples().join("20194.geojson")]).await;
    let mut capped = policy(Role::Surveyor, Area::Nation, false);
    capped.limits = Limits { requests_per_second: None, features_per_response: Some(5), features_per_day: Some(12) };
    let capped = client_with(&agency(&s, "capped", Role::Surveyor, capped).await);
    let mut slow = policy(Role::Reader, Area::Nation, false);
    slow.limits.requests_per_second = Some(2.0);
    let slow = client_with(&agency(&s, "slow", Role::Reader, slow).await);

    let items = format!("{}/collections/parcels/items?limit=100", s.base);
    let (status, _, page) = get_with(&capped, &items).await;
    assert_eq!((status, page["numberReturned"].as_u64()), (200, Some(5)), "capped at 5 a response");
    let (status, _, body) = get_with(&capped, &format!("{}/collections/parcels/export", s.base)).await;
    assert_eq!(status, 403, "an export beyond the cap needs bulk export: {body}");
    let (_, _, page) = get_with(&capped, &items).await;
    assert_eq!(page["numberReturned"].as_u64(), Some(5));
    // 10 taken; 2 left today.
    let (_, _, page) = get_with(&capped, &items).await;
    assert_eq!(page["numberReturned"].as_u64(), Some(2), "the rest of the day's quota");
    let response = capped.get(&items).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 429);
    let retry: u64 = response.headers()["retry-after"].to_str().expect("text").parse().expect("seconds");
    assert!((1..=86_400).contains(&retry));

    let mut refused = None;
    for _ in 0..10 {
        let r = slow.get(format!("{}/collections/parcels/items?limit=1", s.base)).send().await.expect("request");
        if r.status().as_u16() == 429 {
            refused = Some(r.headers()["retry-after"].to_str().expect("text").to_owned());
            break;
        }
    }
    assert_eq!(refused.as_deref(), Some("1"), "a burst over 2 requests a second is refused");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, _) = get_with(&slow, &format!("{}/collections/parcels/items?limit=1", s.base)).await;
    assert_eq!(status, 200, "and answered again once the bucket refills");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_revoked_rotated_and_expired_on_the_running_server() {
    let s = server(&[samples().join("20194.geojson")]).await;
    let token = agency(&s, "notary", Role::Reader, policy(Role::Reader, Area::Nation, false)).await;
    let notary = client_with(&token);
    let items = format!("{}/collections/parcels/items?limit=1", s.base);
    assert_eq!(get_with(&notary, &items).await.0, 200);
    let id = landdb_access::key::id_of(&token).expect("id").to_owned();

    // Rotation: the new key works at once, the old one until the overlap ends.
    let admin = client();
    let rotated: Value = admin
        .post(format!("{}/admin/keys/{id}/rotate", s.base))
        .json(&serde_json::json!({ "overlap_hours": 1 }))
        .send()
        .await
        .expect("rotate")
        .json()
        .await
        .expect("json");
    let fresh = client_with(rotated["key"].as_str().expect("new key"));
    assert_eq!(get_with(&fresh, &items).await.0, 200);
    assert_eq!(get_with(&notary, &items).await.0, 200, "the old key during the overlap");
    let keys = s.store.keys().await.expect("keys");
    let old = keys.iter().find(|k| k.id == id).expect("old key");
    assert!(old.expires_at.is_some_and(|e| e <= chrono::Utc::now() + chrono::Duration::hours(1)));

    // Revocation in the store (as `landdb key revoke` in another process does) reaches this
    // server within its reload interval.
    landdb_api::admin::revoke(&s.store, &id).await.expect("revoke");
    tokio::time::sleep(landdb_api::access::RELOAD_INTERVAL * 3).await;
    assert_eq!(get_with(&notary, &items).await.0, 401);
    assert_eq!(get_with(&fresh, &items).await.0, 200);

    // An agency whose access has ended, and an expired key.
    let mut ended = policy(Role::Reader, Area::Nation, false);
    ended.valid_until = Some(chrono::Utc::now() - chrono::Duration::days(1));
    let ended = client_with(&agency(&s, "ended", Role::Reader, ended).await);
    let (status, _, body) = get_with(&ended, &items).await;
    assert_eq!(status, 403, "{body}");
    let short = landdb_api::admin::new_key(&s.store, "notary", Some(chrono::Utc::now() + chrono::Duration::seconds(2)))
        .await
        .expect("key");
    tokio::time::sleep(landdb_api::access::RELOAD_INTERVAL * 3).await;
    let short = client_with(&short.token);
    assert_eq!(get_with(&short, &items).await.0, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(get_with(&short, &items).await.0, 401, "expired");
    // The operator's key was never disturbed.
    assert_eq!(get_with(&client_with(OPERATOR_KEY), &items).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploader_changes_only_its_own_province_and_follows_only_its_own_jobs() {
    let s = server(&[samples().join("20194.geojson")]).await;
    let token = agency(
        &s,
        "office-other",
        Role::Uploader,
        policy(Role::Uploader, Area::Communes { codes: vec![OWN.into()] }, false),
    )
    .await;
    let office = client_with(&token);
    let reader = client_with(&agency(&s, "reader", Role::Reader, policy(Role::Reader, Area::Nation, false)).await);
    let before = s.engine.snapshot().len();
    let file = samples().join(format!("{OTHER}.geojson"));
    let bytes = std::fs::read(&file).expect("sample");
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name(format!("{OTHER}.geojson")));
    let response = office.post(format!("{}/jobs", s.base)).multipart(form).send().await.expect("upload");
    assert_eq!(response.status().as_u16(), 202);
    let job: Value = response.json().await.expect("job");
    let id = job["id"].as_str().expect("id").to_owned();
    let started = std::time::Instant::now();
    let job = loop {
        let (status, _, job) = get_with(&office, &format!("{}/jobs/{id}", s.base)).await;
        assert_eq!(status, 200, "{job}");
        if job["state"] == "succeeded" || job["state"] == "failed" {
            break job;
        }
        assert!(started.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let report = &job["report"];
    assert_eq!(report["rejected"], report["input"], "every record of another commune is refused: {job}");
    assert!(report["reasons"].to_string().contains("outside_uploader_area"), "{report}");
    assert_eq!(s.engine.snapshot().len(), before);
    // The job is the office's: another agency does not find it, the operator does.
    for path in [format!("/jobs/{id}"), format!("/jobs/{id}/report"), format!("/jobs/{id}/quarantine")] {
        assert_eq!(
            get_with(&reader, &format!("{}{path}", s.base)).await.0,
            403,
            "{path}: a reader does not follow uploads"
        );
        assert_eq!(get_with(&office, &format!("{}{path}", s.base)).await.0, 200, "{path}");
        assert_eq!(get_with(&client(), &format!("{}{path}", s.base)).await.0, 200, "{path} for the operator");
    }
    let other_office = client_with(
        &agency(
            &s,
            "office-two",
            Role::Uploader,
            policy(Role::Uploader, Area::Communes { codes: vec![OTHER.into()] }, false),
        )
        .await,
    );
    let (status, _, body) = get_with(&other_office, &format!("{}/jobs/{id}/quarantine", s.base)).await;
    assert_eq!(status, 404, "another office's job does not exist for it: {body}");
}

/// Tampering with the chain in the database (as its owner, who can lift the append-only
/// triggers) is found, at the entry where it happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_chain_finds_edits_deletions_and_reordering() {
    let s = server(&[samples().join("20194.geojson")]).await;
    for i in 1..=12 {
        let (status, _, _) = get_with(&client(), &format!("{}/collections/parcels/items?limit={i}", s.base)).await;
        assert_eq!(status, 200);
    }
    s.app.gate.audit.flush().await;
    let intact = landdb_api::admin::verify(&s.store).await.expect("verify").expect("intact");
    assert_eq!(intact.entries, 12);
    let db = sqlx::PgPool::connect(&s.db.url).await.expect("database");
    // The log refuses changes while its triggers stand.
    let refused = sqlx::query("UPDATE audit_block SET entries = ''").execute(&db).await;
    assert!(refused.expect_err("append-only").to_string().contains("append-only"));
    assert!(sqlx::query("DELETE FROM audit_block").execute(&db).await.is_err());
    sqlx::query("ALTER TABLE audit_block DISABLE TRIGGER audit_block_append_only").execute(&db).await.expect("lift");
    let broken_at = || async { landdb_api::admin::verify(&s.store).await.expect("verify").expect_err("broken").seq };
    let intact = || async { landdb_api::admin::verify(&s.store).await.expect("verify").is_ok() };

    // Edit: one count changed.
    tamper(&db, |lines| lines[4].1[9] = 0.into()).await;
    assert_eq!(broken_at().await, 5);
    tamper(&db, |lines| lines[4].1[9] = 5.into()).await;
    assert!(intact().await);
    // Reorder: two entries' contents swapped under their sequence numbers, then the lines.
    let swap = |lines: &mut Vec<Line>| {
        let (seven, eight) = (lines[6].clone(), lines[7].clone());
        lines[6] = (eight.0, with_seq(eight.1, 7));
        lines[7] = (seven.0, with_seq(seven.1, 8));
    };
    tamper(&db, swap).await;
    assert_eq!(broken_at().await, 7);
    tamper(&db, swap).await;
    assert!(intact().await);
    tamper(&db, |lines| lines.swap(6, 7)).await;
    assert_eq!(broken_at().await, 8, "entry 8 where 7 belongs");
    tamper(&db, |lines| lines.swap(6, 7)).await;
    assert!(intact().await);
    // Delete: the last, then one from the middle.
    tamper(&db, |lines| {
        lines.pop();
    })
    .await;
    // The block's own columns no longer match its lines: named before the chain is followed.
    let broken = landdb_api::admin::verify(&s.store).await.expect("verify").expect_err("tail cut");
    assert!(broken.to_string().contains("last_seq") || broken.seq == 12, "{broken}");
    tamper(&db, |lines| {
        lines.remove(3);
    })
    .await;
    assert!(!intact().await, "an entry removed from the middle");
    // The head's record deleted too: reported, not taken for an empty log.
    sqlx::query("DELETE FROM audit_head").execute(&db).await.expect("delete the head");
    assert!(landdb_api::admin::verify(&s.store).await.expect("verify").is_err());
    let (_, _, report) = get_with(&client(), &format!("{}/admin/audit/verify", s.base)).await;
    assert_eq!(report["intact"].as_bool(), Some(false), "{report}");
}

/// An audit line as an attacker edits it: the hash as written, the JSON array it covers.
type Line = (String, serde_json::Value);

fn with_seq(mut entry: serde_json::Value, seq: i64) -> serde_json::Value {
    entry[0] = seq.into();
    entry
}

/// Rewrites the audit log the way its owner could (its triggers lifted): `edit` changes, moves
/// or removes lines of the whole log, in order, and each block gets back the lines that are now
/// among its own.
async fn tamper(db: &sqlx::PgPool, edit: impl Fn(&mut Vec<Line>)) {
    let blocks: Vec<(i64, String)> = sqlx::query_as("SELECT last_seq, entries FROM audit_block ORDER BY last_seq")
        .fetch_all(db)
        .await
        .expect("blocks");
    let mut lines: Vec<Line> = Vec::new();
    let mut sizes = Vec::new();
    for (_, text) in &blocks {
        sizes.push(text.lines().count());
        for line in text.lines() {
            let (hash, json) = line.split_once(' ').expect("hash and entry");
            lines.push((hash.to_owned(), serde_json::from_str(json).expect("an entry")));
        }
    }
    edit(&mut lines);
    let mut rest = lines.into_iter();
    for ((last_seq, _), size) in blocks.iter().zip(sizes) {
        let text: Vec<String> = rest.by_ref().take(size).map(|(hash, entry)| format!("{hash} {entry}")).collect();
        sqlx::query("UPDATE audit_block SET entries = $2 WHERE last_seq = $1")
            .bind(last_seq)
            .bind(text.join("\n"))
            .execute(db)
            .await
            .expect("rewrite a block");
    }
}
