//! The sharing API over real HTTP: a server on a free port, over a real PostGIS with the
//! samples imported, asked with a real HTTP client and with GDAL's OGC API – Features driver.

use std::collections::BTreeSet;
use std::time::Duration;

use landdb_ingest::import::{Mode, import};
use landdb_ingest::pipeline::Options;
use landdb_ingest::profiles::FieldMapping;
use landdb_model::{CommuneCode, ReferenceData};
use landdb_store::ParcelStore;
use landdb_tests::http::{encoded, get, import_files, link, samples, server, versions};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ogc_api_answers_and_pages_through_every_parcel() {
    let s = server(&[samples()]).await;
    let total = s.store.count_current().await.expect("count") as usize;

    // Landing page, conformance, API definition, collections.
    let (status, media, landing) = get(&format!("{}/", s.base)).await;
    assert_eq!((status, media.as_str()), (200, "application/json"));
    for rel in ["self", "service-desc", "conformance", "data"] {
        assert!(link(&landing, rel).is_some_and(|h| h.starts_with(&s.base)), "{rel}: {landing}");
    }
    let (_, _, conformance) = get(link(&landing, "conformance").expect("conformance")).await;
    let classes = conformance["conformsTo"].as_array().expect("classes");
    assert!(classes.iter().any(|c| c.as_str().is_some_and(|c| c.ends_with("/conf/core"))));
    assert!(classes.iter().any(|c| c.as_str().is_some_and(|c| c.ends_with("/conf/geojson"))));
    let (status, media, api) = get(link(&landing, "service-desc").expect("api")).await;
    assert_eq!(status, 200);
    assert!(media.starts_with("application/vnd.oai.openapi+json"), "{media}");
    assert_eq!(api["openapi"], "3.0.3");
    let (_, _, collections) = get(link(&landing, "data").expect("data")).await;
    let parcels = &collections["collections"][0];
    assert_eq!(parcels["id"], "parcels");
    let extent = parcels["extent"]["spatial"]["bbox"][0].as_array().expect("bbox");
    assert!(extent[0].as_f64().expect("west") > 107.0 && extent[2].as_f64().expect("east") < 109.0, "{extent:?}");

    // The communes and land-use codes beside the parcels, paged by code; a commune counts its
    // current parcels.
    let ids: Vec<&str> =
        collections["collections"].as_array().expect("list").iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids, ["parcels", "communes", "land-use-codes"]);
    let reference = ReferenceData::embedded().expect("reference");
    let mut url = format!("{}/collections/communes/items?limit=1000", s.base);
    let mut communes = 0;
    loop {
        let (status, _, page) = get(&url).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["numberMatched"].as_u64(), Some(reference.communes().count() as u64));
        let features = page["features"].as_array().expect("features");
        communes += features.len();
        // Pages larger than a map's view carry no outlines: no request outlines the country.
        if features.len() > 100 {
            assert!(features.iter().all(|f| f["geometry"].is_null()), "a page of {} outlined", features.len());
        }
        match link(&page, "next") {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(communes, reference.communes().count());
    let in_20194: i64 = sqlx::query_scalar("SELECT count(*) FROM current_parcel WHERE commune_code = '20194'")
        .fetch_one(&mut <sqlx::PgConnection as sqlx::Connection>::connect(&s.db.url).await.expect("connect"))
        .await
        .expect("count");
    let (status, _, commune) = get(&format!("{}/collections/communes/items/20194", s.base)).await;
    assert_eq!(status, 200, "{commune}");
    assert_eq!(commune["properties"]["parcels"].as_i64(), Some(in_20194));
    assert!(in_20194 > 0);
    let (_, _, codes) = get(&format!("{}/collections/land-use-codes/items?limit=10000", s.base)).await;
    assert!(codes["features"].as_array().expect("codes").iter().any(|f| f["properties"]["code"] == "ODT"));
    // A box selects the communes whose parcels meet it; a filter, by their properties.
    let (status, _, boxed) = get(&format!("{}/collections/communes/items?bbox=107,15,109,17", s.base)).await;
    assert_eq!(status, 200, "{boxed}");
    let boxed: BTreeSet<&str> =
        boxed["features"].as_array().expect("features").iter().filter_map(|f| f["id"].as_str()).collect();
    assert!(boxed.contains("20194") && boxed.len() < 10, "the communes of the samples: {boxed:?}");
    let (_, _, far) = get(&format!("{}/collections/communes/items?bbox=1,2,3,4", s.base)).await;
    assert_eq!(far["numberMatched"], 0, "{far}");
    let (_, _, held) = get(&format!("{}/collections/communes/items?filter=parcels%20%3E%200", s.base)).await;
    let held: BTreeSet<&str> =
        held["features"].as_array().expect("features").iter().filter_map(|f| f["id"].as_str()).collect();
    assert_eq!(held, boxed, "the communes holding parcels are those in the box");
    // A commune holding parcels is outlined by them (the map's background layer): its polygon
    // holds its parcels (the corners of their boxes, up to the metre it is simplified to).
    let (_, _, outlined) = get(&format!("{}/collections/communes/items?bbox=107,15,109,17", s.base)).await;
    let view = s.engine.snapshot();
    for f in outlined["features"].as_array().expect("features") {
        let code = CommuneCode::parse(f["id"].as_str().expect("id")).expect("code");
        assert_eq!(f["geometry"]["type"], "Polygon", "{code}: {f}");
        let ring: Vec<(f64, f64)> = f["geometry"]["coordinates"][0]
            .as_array()
            .expect("a ring")
            .iter()
            .map(|c| (c[0].as_f64().expect("x"), c[1].as_f64().expect("y")))
            .collect();
        let outline = geo::Polygon::new(geo::LineString::from(ring), Vec::new());
        use geo::{Contains, Distance, Euclidean};
        for p in view.in_commune(&code) {
            let b = p.bounds().expect("a box");
            for corner in [
                b.min(),
                b.max(),
                geo::coord! { x: b.min().x, y: b.max().y },
                geo::coord! { x: b.max().x, y: b.min().y },
            ] {
                let corner = geo::Point::from(corner);
                let away = Euclidean.distance(&corner, outline.exterior());
                assert!(
                    outline.contains(&corner) || away < 2e-5,
                    "{code}: a corner of parcel {}'s box lies {away}° outside the outline",
                    p.version().0
                );
            }
        }
    }

    // Every parcel once, in pages, following the next links.
    let mut url = format!("{}/collections/parcels/items?limit=700", s.base);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (status, media, page) = get(&url).await;
        assert_eq!((status, media.as_str()), (200, "application/geo+json"), "{url}");
        assert_eq!(page["type"], "FeatureCollection");
        assert_eq!(page["numberMatched"].as_u64(), Some(total as u64));
        assert_eq!(page["numberReturned"].as_u64(), Some(page["features"].as_array().expect("features").len() as u64));
        seen.extend(versions(&page));
        pages += 1;
        match link(&page, "next") {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), total);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in version order, none twice");
    assert_eq!(pages, total.div_ceil(700));
    // And back from the last page through the prev links, to the first, which has none.
    let mut back = Vec::new();
    loop {
        let (status, _, page) = get(&url).await;
        assert_eq!(status, 200, "{url}");
        let mut ids = versions(&page);
        ids.reverse();
        back.extend(ids);
        match link(&page, "prev") {
            Some(prev) => url = prev.to_owned(),
            None => break,
        }
    }
    back.reverse();
    assert_eq!(back, seen, "prev links walk the same pages backwards");

    // A feature: geometry and public properties, no personal data without a grant.
    let (_, _, page) = get(&format!("{}/collections/parcels/items?limit=1", s.base)).await;
    let feature = &page["features"][0];
    assert_eq!(feature["geometry"]["type"], "MultiPolygon");
    let properties = feature["properties"].as_object().expect("properties");
    for name in ["version", "national_id", "commune", "sheet", "number", "land_use", "area_m2"] {
        assert!(properties.contains_key(name), "{name} in {properties:?}");
    }
    assert!(!properties.contains_key("address"), "the address is personal data");
    let id = feature["id"].as_i64().expect("id");
    let (status, _, one) = get(&format!("{}/collections/parcels/items/{id}", s.base)).await;
    assert_eq!(status, 200);
    assert_eq!(one["id"], feature["id"]);
    assert_eq!(one["geometry"], feature["geometry"]);
    let stored = s.store.versions(&[landdb_model::VersionId(id)]).await.expect("read");
    let ring = &one["geometry"]["coordinates"][0][0];
    let first = stored[0].parcel.geometry.0[0].exterior().0[0];
    assert_eq!((ring[0][0].as_f64(), ring[0][1].as_f64()), (Some(first.x), Some(first.y)), "coordinates exact");

    // Selected properties only.
    let (_, _, page) =
        get(&format!("{}/collections/parcels/items?limit=3&properties=national_id,area_m2", s.base)).await;
    let keys: BTreeSet<&str> =
        page["features"][0]["properties"].as_object().expect("properties").keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["version", "national_id", "area_m2"]));
    assert!(
        link(&page, "next").is_some_and(|n| n.contains("properties=national_id%2Carea_m2")),
        "links keep the query"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boxes_and_points_answer_what_postgis_answers() {
    let s = server(&[samples()]).await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&s.db.url).await.expect("connect");
    let view = s.engine.snapshot();
    // Boxes of about 50 m, 200 m and 1 km with a corner inside a parcel.
    let corners: Vec<geo::Point<f64>> = view
        .parcels()
        .step_by(500)
        .take(3)
        .map(|p| landdb_model::national_id::interior_point(&p.geometry()).expect("interior"))
        .collect();
    for (corner, size) in corners.iter().zip([0.0005, 0.002, 0.01]) {
        let (x, y) = (corner.x(), corner.y());
        let bbox = format!("{x},{y},{},{}", x + size, y + size);
        let mut ours = Vec::new();
        let mut url = format!("{}/collections/parcels/items?bbox={bbox}&limit=50", s.base);
        let mut matched = None;
        loop {
            let (status, _, page) = get(&url).await;
            assert_eq!(status, 200, "{page}");
            matched = matched.or(page["numberMatched"].as_u64());
            ours.extend(versions(&page));
            match link(&page, "next") {
                Some(next) => url = next.to_owned(),
                None => break,
            }
        }
        let theirs: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM current_parcel WHERE ST_Intersects(geom, ST_MakeEnvelope($1, $2, $3, $4, 4326)) ORDER BY id",
        )
        .bind(x)
        .bind(y)
        .bind(x + size)
        .bind(y + size)
        .fetch_all(&mut conn)
        .await
        .expect("query");
        assert!(!theirs.is_empty(), "the box {bbox} holds parcels");
        assert_eq!(ours, theirs, "bbox {bbox}");
        // Back through the prev links, the same parcels.
        let mut back = Vec::new();
        loop {
            let (_, _, page) = get(&url).await;
            back.splice(0..0, versions(&page));
            match link(&page, "prev") {
                Some(prev) => url = prev.to_owned(),
                None => break,
            }
        }
        assert_eq!(back, theirs, "bbox {bbox}, backwards");
        assert_eq!(matched, Some(theirs.len() as u64));
    }

    // The parcel at a point: interior points of a sample of parcels, and a vertex shared by two.
    let reference = ReferenceData::embedded().expect("reference");
    for parcel in view.parcels().step_by(211) {
        let inside = landdb_model::national_id::interior_point(&parcel.geometry()).expect("interior");
        let (status, _, found) = get(&format!("{}/parcels/at?lon={}&lat={}", s.base, inside.x(), inside.y())).await;
        assert_eq!(status, 200);
        let theirs: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM current_parcel WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint($1, $2), 4326)) ORDER BY id",
        )
        .bind(inside.x())
        .bind(inside.y())
        .fetch_all(&mut conn)
        .await
        .expect("query");
        assert_eq!(versions(&found), theirs);
        assert!(theirs.contains(&parcel.version().0));
        let id = parcel.national_id();
        let (status, _, by_id) = get(&format!("{}/parcels/national-id/{id}", s.base)).await;
        assert_eq!(status, 200);
        assert!(versions(&by_id).contains(&parcel.version().0));
        // By natural key, and at the point as a surveyor reads it in the province's TM-3 zone.
        let key = parcel.key();
        let path = landdb_api::routes::key_path(&key);
        let (status, _, by_key) = get(&format!("{}{path}", s.base)).await;
        assert_eq!(status, 200, "{by_key}");
        assert_eq!(versions(&by_key), [parcel.version().0]);
        assert_eq!(by_key["links"][0]["href"], format!("{}{path}", s.base), "{by_key}");
        let zone = reference.zone_of_commune(&key.commune).expect("zone");
        let local = landdb_crs::Transformer::wgs84_to_zone(&zone).expect("transformer");
        let c = local.coord(geo::Coord { x: inside.x(), y: inside.y() }).expect("to zone");
        let (status, _, surveyed) =
            get(&format!("{}/parcels/at?x={}&y={}&point-crs=EPSG:{}", s.base, c.x, c.y, zone.epsg)).await;
        assert_eq!(status, 200, "{surveyed}");
        assert!(versions(&surveyed).contains(&parcel.version().0), "{surveyed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_is_a_400_that_names_the_parameter() {
    let s = server(&[samples().join("20194.geojson")]).await;
    let cases = [
        ("/collections/parcels/items?colour=red", "`colour`"),
        ("/collections/parcels/items?limit=0", "limit=0"),
        ("/collections/parcels/items?limit=ten", "limit=ten"),
        ("/collections/parcels/items?limit=5&limit=6", "more than once"),
        ("/collections/parcels/items?bbox=1,2,3", "bbox=1,2,3"),
        ("/collections/parcels/items?bbox=108,16,109,17,5", "bbox=108,16,109,17,5"),
        ("/collections/parcels/items?bbox=108,17,109,16", "south is above north"),
        ("/collections/parcels/items?bbox=108,16,109,17&bbox-crs=EPSG:3405", "bbox-crs"),
        ("/collections/parcels/items?properties=owner", "`owner`"),
        ("/collections/parcels/items?properties=address", "`address`"),
        ("/collections/parcels/items?after=abc", "after: this cursor cannot be used"),
        ("/collections/parcels/items?after=5&before=9", "not both"),
        ("/collections/parcels/items?f=xml", "f=xml"),
        ("/collections/parcels?limit=3", "`limit`"),
        ("/?bbox=1,2,3,4", "`bbox`"),
        ("/conformance?x=1", "`x`"),
        ("/parcels/at?lon=108.2", "`lat`"),
        ("/parcels/at?lon=108.2&lat=north", "lat=north"),
        ("/parcels/at?lon=200&lat=16", "not a WGS84 position"),
        ("/parcels/at?lon=108.2&lat=16&datetime=yesterday", "datetime=yesterday"),
        ("/parcels/national-id/not-an-id", "not-an-id"),
        ("/collections/parcels/export?commune=abc", "commune=abc"),
        ("/collections/parcels/export?limit=5", "`limit`"),
        ("/collections/parcels/export?bbox=1,2", "bbox=1,2"),
        ("/collections/parcels/export?crs=EPSG:9999", "crs=EPSG:9999"),
        ("/collections/parcels/export?f=kml", "f=kml"),
        ("/collections/parcels/export?polygon=POINT(1%202)", "polygon="),
        ("/collections/parcels/export?polygon=POLYGON((1", "polygon="),
        ("/collections/parcels/export?polygon=POLYGON((1%202,3%204,1%205,1%202))&filter=area_m2%3E1", "not both"),
        ("/collections/parcels/export?filter=valid_to%20IS%20NULL", "temporal"),
        ("/collections/parcels/items?crs=http://www.opengis.net/def/crs/EPSG/0/3857", "crs="),
        ("/collections/parcels/items?bbox-crs=EPSG:4326", "without bbox"),
        ("/collections/parcels/items?filter=colour%3D'red'", "`colour`"),
        ("/collections/parcels/items?filter=address%3D'x'", "`address`"),
        ("/collections/parcels/items?filter=area_m2%3E", "not valid CQL2 text"),
        ("/collections/parcels/items?filter=area_m2%3D'big'", "area_m2"),
        ("/collections/parcels/items?filter=%7B%22op%22%3A%22%3D%22%7D&filter-lang=cql2-json", "CQL2 JSON"),
        ("/collections/parcels/items?filter=area_m2%3E1&filter-lang=sql", "filter-lang=sql"),
        ("/collections/parcels/items?filter=area_m2%3E1&filter-crs=EPSG:3857", "filter-crs"),
        ("/collections/parcels/items?filter=area_m2%2B1%3E5", "cannot be compared"),
        ("/collections/parcels/items?sortby=colour", "`colour`"),
        ("/collections/parcels/items?sortby=geometry", "sorted by `geometry`"),
        ("/collections/parcels/items?sortby=-area_m2&after=999999999", "start again from the first page"),
        ("/collections/parcels/items?datetime=soon", "datetime=soon"),
        ("/collections/parcels/items?datetime=2026-01-01/2020-01-01", "ends before"),
        ("/collections/parcels/items?datetime=2020-01-01&sortby=area_m2", "sortby cannot"),
        ("/collections/parcels/items?datetime=2020-01-01&before=10", "forwards only"),
        ("/collections/parcels/queryables?filter=x", "`filter`"),
        ("/parcels/at?x=500000&y=1700000", "`point-crs`"),
        ("/parcels/at?x=500000&y=1700000&point-crs=EPSG:1", "point-crs=EPSG:1"),
        ("/parcels/at?lon=108.2&lat=16&x=5", "not both"),
        ("/parcels/at?lon=108.2&lat=16&point-crs=EPSG:4326", "point-crs goes with x and y"),
        ("/parcels/key/abc/1/1", "commune abc"),
    ];
    for (path, names) in cases {
        let (status, media, body) = get(&format!("{}{path}", s.base)).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(media, "application/json", "{path}");
        assert_eq!(body["code"], "InvalidParameterValue", "{path}");
        let description = body["description"].as_str().expect("description");
        assert!(description.contains(names), "{path}: {description}");
    }
    for path in [
        "/collections/roads",
        "/collections/roads/items",
        "/collections/parcels/items/999999999",
        "/collections/communes/items/99999",
        "/collections/parcels/tiles/WebMercatorQuad/30/0/0",
        "/collections/parcels/tiles/WebMercatorQuad/2/4/0",
        "/collections/parcels/tiles/WebMercatorQuad/a/0/0",
        "/collections/parcels/tiles/WorldCRS84Quad/2/0/0",
        "/assets/secret.txt",
        "/nothing",
    ] {
        let (status, _, body) = get(&format!("{}{path}", s.base)).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["code"], "NotFound", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_is_served_within_a_second_of_its_commit() {
    let s = server(&[samples().join("20194.geojson")]).await;
    let (_, _, before) = get(&format!("{}/metrics", s.base)).await;
    import_files(&s.store, &[samples().join("20197.geojson")]).await;
    let committed = std::time::Instant::now();
    let total = s.store.count_current().await.expect("count");
    loop {
        let (_, _, page) = get(&format!("{}/collections/parcels/items?limit=1", s.base)).await;
        if page["numberMatched"].as_u64() == Some(total) {
            break;
        }
        assert!(committed.elapsed() < Duration::from_secs(1), "not served a second after the commit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The feed position is the operator's to see, in the metrics.
    let (_, _, after) = get(&format!("{}/metrics", s.base)).await;
    let position = |metrics: &serde_json::Value| -> Option<f64> {
        metrics.as_str()?.lines().find_map(|l| l.strip_prefix("landdb_engine_feed_position ")?.trim().parse().ok())
    };
    assert!(position(&after) > position(&before), "{after}");
}

/// GDAL's OGC API – Features driver, as QGIS and other GIS tools use it: it finds the collection,
/// counts it, and copies every parcel through the pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdal_reads_every_parcel_through_the_oapif_driver() {
    let s = server(&[samples()]).await;
    let total = s.store.count_current().await.expect("count");
    let source = format!("OAPIF:{}/", s.base);
    let out = std::env::temp_dir().join(format!("landdb-oapif-{}.geojson", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let (listing, copy) = {
        let source = source.clone();
        let out = out.clone();
        tokio::task::spawn_blocking(move || {
            // GDAL sends the key as any OAPIF client would.
            let key = format!("Authorization: Bearer {}", landdb_tests::http::OPERATOR_KEY);
            let listing = std::process::Command::new("ogrinfo")
                .env("GDAL_HTTP_HEADERS", &key)
                .args(["-ro", "-so", &source, "parcels"])
                .output();
            let copy = std::process::Command::new("ogr2ogr")
                .env("GDAL_HTTP_HEADERS", &key)
                .args(["-f", "GeoJSON", &out.display().to_string(), &source, "parcels"])
                .output();
            (listing, copy)
        })
        .await
        .expect("gdal")
    };
    let listing = listing.expect("ogrinfo runs");
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.status.success(), "{text}{}", String::from_utf8_lossy(&listing.stderr));
    assert!(text.contains(&format!("Feature Count: {total}")), "{text}");
    let copy = copy.expect("ogr2ogr runs");
    assert!(copy.status.success(), "{}", String::from_utf8_lossy(&copy.stderr));
    let copied: Value = serde_json::from_str(&std::fs::read_to_string(&out).expect("output")).expect("GeoJSON");
    assert_eq!(copied["features"].as_array().expect("features").len() as u64, total);
    let _ = std::fs::remove_file(&out);
}

/// GeoJSON is compressed for clients that ask (gzip, brotli), and left alone for those that
/// do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_compressed_when_the_client_asks() {
    let s = server(&[samples().join("20194.geojson")]).await;
    let client = landdb_tests::http::client();
    let url = format!("{}/collections/parcels/items?limit=500", s.base);
    let plain = client.get(&url).send().await.expect("plain");
    assert!(plain.headers().get("content-encoding").is_none());
    let plain_len = plain.bytes().await.expect("body").len();
    for encoding in ["gzip", "br"] {
        let packed = client.get(&url).header("accept-encoding", encoding).send().await.expect("packed");
        assert_eq!(packed.headers().get("content-encoding").and_then(|v| v.to_str().ok()), Some(encoding));
        let packed_len = packed.bytes().await.expect("body").len();
        assert!(packed_len * 3 < plain_len, "{encoding}: {packed_len} of {plain_len} bytes");
    }
}

/// An unchanged answer is not sent twice: the ETag comes back as a 304 until an import commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_spare_unchanged_answers_until_an_import_commits() {
    let s = server(&[samples().join("20194.geojson")]).await;
    let client = landdb_tests::http::client();
    let url = format!("{}/collections/parcels/items?limit=50", s.base);
    let first = client.get(&url).send().await.expect("get");
    assert_eq!(first.status().as_u16(), 200);
    let tag = first.headers().get("etag").expect("an ETag").to_str().expect("text").to_owned();
    let again = client.get(&url).header("if-none-match", &tag).send().await.expect("get");
    assert_eq!(again.status().as_u16(), 304);
    assert!(again.bytes().await.expect("body").is_empty());
    let other =
        client.get(format!("{url}&properties=area_m2")).header("if-none-match", &tag).send().await.expect("get");
    assert_eq!(other.status().as_u16(), 200, "another request, another tag");

    import_files(&s.store, &[samples().join("20197.geojson")]).await;
    let total = s.store.count_current().await.expect("count");
    let started = std::time::Instant::now();
    while s.engine.snapshot().len() as u64 != total && started.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = client.get(&url).header("if-none-match", &tag).send().await.expect("get");
    assert_eq!(after.status().as_u16(), 200, "an import committed since");
    assert_ne!(after.headers().get("etag").and_then(|v| v.to_str().ok()), Some(tag.as_str()));
}

/// The export streams every selected parcel once, as one GeoJSON file: all of them, a commune's,
/// a box's, the same parcels the store and the items pages hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_stream_every_selected_parcel_once() {
    let s = server(&[samples()]).await;
    let total = s.store.count_current().await.expect("count");
    let (status, media, all) = get(&format!("{}/collections/parcels/export", s.base)).await;
    assert_eq!((status, media.as_str()), (200, "application/geo+json"));
    let ids = versions(&all);
    assert_eq!(ids.len() as u64, total);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "each once, in version order");
    let (_, _, page) = get(&format!("{}/collections/parcels/items?limit=1", s.base)).await;
    assert_eq!(all["features"][0], page["features"][0], "the same feature as the items page");

    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&s.db.url).await.expect("connect");
    let commune: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM current_parcel WHERE commune_code = '20197' ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .expect("query");
    assert!(!commune.is_empty());
    let (_, _, one) = get(&format!("{}/collections/parcels/export?commune=20197", s.base)).await;
    assert_eq!(versions(&one), commune);

    let view = s.engine.snapshot();
    let corner = landdb_model::national_id::interior_point(&view.parcels().nth(100).expect("parcel").geometry())
        .expect("interior");
    let bbox = format!("{},{},{},{}", corner.x(), corner.y(), corner.x() + 0.002, corner.y() + 0.002);
    let (_, _, boxed) = get(&format!("{}/collections/parcels/export?bbox={bbox}", s.base)).await;
    let (_, _, items) = get(&format!("{}/collections/parcels/items?bbox={bbox}&limit=10000", s.base)).await;
    assert!(!versions(&items).is_empty());
    assert_eq!(versions(&boxed), versions(&items));

    // A polygon, and a filter: the parcels PostGIS selects.
    let (x, y) = (corner.x(), corner.y());
    let polygon = format!("POLYGON(({x} {y}, {} {y}, {x} {}, {x} {y}))", x + 0.003, y + 0.003);
    let theirs: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM current_parcel WHERE ST_Intersects(geom, ST_GeomFromText($1, 4326)) ORDER BY id",
    )
    .bind(&polygon)
    .fetch_all(&mut conn)
    .await
    .expect("query");
    assert!(!theirs.is_empty());
    let (status, _, by_polygon) =
        get(&format!("{}/collections/parcels/export?polygon={}", s.base, encoded(&polygon))).await;
    assert_eq!(status, 200, "{by_polygon}");
    assert_eq!(versions(&by_polygon), theirs);
    let (_, _, filtered) =
        get(&format!("{}/collections/parcels/export?commune=20197&filter={}", s.base, encoded("area_m2 > 150"))).await;
    let theirs: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM current_parcel WHERE commune_code = '20197' AND geometry_area_m2 > 150 ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .expect("query");
    assert!(!theirs.is_empty());
    assert_eq!(versions(&filtered), theirs);

    // GeoPackage, zipped Shapefile and DXF through GDAL, read back by GDAL: the commune's
    // parcels, in its TM-3 zone, Vietnamese text intact.
    let reference = ReferenceData::embedded().expect("reference");
    let zone = reference.zone_of_commune(&landdb_model::CommuneCode::parse("20197").expect("code")).expect("zone");
    let dir = std::env::temp_dir().join(format!("landdb-exports-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (f, file, media) in [
        ("gpkg", "parcels.gpkg", "application/geopackage+sqlite3"),
        ("shp", "parcels-shp.zip", "application/zip"),
        ("dxf", "parcels.dxf", "image/vnd.dxf"),
    ] {
        let response = landdb_tests::http::client()
            .get(format!("{}/collections/parcels/export?commune=20197&f={f}&crs=EPSG:{}", s.base, zone.epsg))
            .send()
            .await
            .expect("export");
        assert_eq!(response.status().as_u16(), 200, "{f}");
        assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some(media));
        let disposition =
            response.headers().get("content-disposition").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(disposition.contains(file), "{disposition}");
        let path = dir.join(file);
        std::fs::write(&path, response.bytes().await.expect("body")).expect("write");
        let source =
            if f == "shp" { format!("/vsizip/{}/parcels.shp", path.display()) } else { path.display().to_string() };
        let info =
            std::process::Command::new("ogrinfo").args(["-ro", "-al", "-so"]).arg(&source).output().expect("ogrinfo");
        let info = String::from_utf8_lossy(&info.stdout).into_owned();
        assert!(info.contains(&format!("Feature Count: {}", commune.len())), "{f}: {info}");
        // Metres in the zone, not degrees.
        assert!(info.contains("Extent: (") && !info.contains("Extent: (108."), "{f}: {info}");
        if f == "shp" {
            let cpg =
                std::process::Command::new("unzip").args(["-p"]).arg(&path).arg("parcels.cpg").output().expect("unzip");
            assert_eq!(String::from_utf8_lossy(&cpg.stdout).trim(), "UTF-8");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Surveyors get their province's VN-2000 TM-3 zone: the same boundaries, in metres, which go
/// back to the stored WGS84 within a millimetre; EPSG:4326 puts latitude first, as EPSG does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_come_in_the_coordinate_system_asked_for() {
    let s = server(&[samples().join("20194.geojson")]).await;
    let reference = ReferenceData::embedded().expect("reference");
    let zone = reference.zone_of_commune(&landdb_model::CommuneCode::parse("20194").expect("code")).expect("zone");
    let uri = format!("http://www.opengis.net/def/crs/EPSG/0/{}", zone.epsg);
    let (_, _, collection) = get(&format!("{}/collections/parcels", s.base)).await;
    assert!(collection["crs"].as_array().expect("crs").iter().any(|c| c == uri.as_str()), "{collection}");

    let wgs84 = landdb_tests::http::client()
        .get(format!("{}/collections/parcels/export", s.base))
        .send()
        .await
        .expect("export");
    assert_eq!(
        wgs84.headers().get("content-crs").and_then(|v| v.to_str().ok()),
        Some("<http://www.opengis.net/def/crs/OGC/1.3/CRS84>")
    );
    let wgs84: Value = wgs84.json().await.expect("GeoJSON");
    let local = landdb_tests::http::client()
        .get(format!("{}/collections/parcels/export?crs={uri}", s.base))
        .send()
        .await
        .expect("export");
    assert_eq!(local.headers().get("content-crs").and_then(|v| v.to_str().ok()), Some(format!("<{uri}>").as_str()));
    let local: Value = local.json().await.expect("GeoJSON");
    let back = landdb_crs::Transformer::zone_to_wgs84(&zone).expect("transformer");
    let (a, b) = (wgs84["features"].as_array().expect("features"), local["features"].as_array().expect("features"));
    assert_eq!(a.len(), b.len());
    for (fa, fb) in a.iter().zip(b).step_by(37) {
        assert_eq!(fa["id"], fb["id"]);
        let (pa, pb) = (&fa["geometry"]["coordinates"][0][0][0], &fb["geometry"]["coordinates"][0][0][0]);
        let easting = pb[0].as_f64().expect("x");
        assert!((100_000.0..900_000.0).contains(&easting), "metres in a TM-3 zone: {pb}");
        let c = back.coord(geo::Coord { x: easting, y: pb[1].as_f64().expect("y") }).expect("back");
        let (lon, lat) = (pa[0].as_f64().expect("lon"), pa[1].as_f64().expect("lat"));
        assert!((c.x - lon).abs() < 1e-8 && (c.y - lat).abs() < 1e-8, "{pa} against {c:?}");
    }

    let (_, _, plain) = get(&format!("{}/collections/parcels/items?limit=1", s.base)).await;
    let (_, _, swapped) = get(&format!("{}/collections/parcels/items?limit=1&crs=EPSG:4326", s.base)).await;
    let (p, q) = (
        &plain["features"][0]["geometry"]["coordinates"][0][0][0],
        &swapped["features"][0]["geometry"]["coordinates"][0][0][0],
    );
    assert_eq!((p[0].as_f64(), p[1].as_f64()), (q[1].as_f64(), q[0].as_f64()), "latitude first");
}

/// A parcel whose land use changed: its history lists both versions, linked both ways, and the
/// point lookup on a date before the change finds the earlier version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_past_dates_come_from_the_store() {
    let s = server(&[samples().join("20194.geojson")]).await;
    let before_change = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The same commune again, the first parcel's land use changed, as the whole truth for it.
    let text = std::fs::read_to_string(samples().join("20194.geojson")).expect("sample");
    let changed = text.replacen("\"KyHieuMucDichSuDung\":\"ODT\"", "\"KyHieuMucDichSuDung\":\"CLN\"", 1);
    assert_ne!(changed, text);
    let dir = std::env::temp_dir().join(format!("landdb-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("20194.geojson");
    std::fs::write(&file, changed).expect("write");
    let reference = ReferenceData::embedded().expect("reference");
    let options = Options { crs_override: None, mapping: FieldMapping::builtin().expect("profile"), area: None };
    import(&s.store, std::slice::from_ref(&file), &reference, &options, Mode::ReplaceCommune, &|_| {})
        .await
        .expect("import");
    let _ = std::fs::remove_dir_all(&dir);

    let key = landdb_model::ParcelKey {
        commune: landdb_model::CommuneCode::parse("20194").expect("code"),
        sheet: "1".into(),
        number: "1".into(),
    };
    let now = s.store.current_by_key(&key).await.expect("read").expect("current");
    assert_eq!(now.parcel.land_use.iter().map(|c| c.as_str()).collect::<Vec<_>>(), ["CLN"]);
    let (status, _, history) = get(&format!("{}/collections/parcels/items/{}/history", s.base, now.id.0)).await;
    assert_eq!(status, 200, "{history}");
    let listed = history["versions"].as_array().expect("versions");
    assert_eq!(listed.len(), 2, "{history}");
    let (old, new) = (&listed[0], &listed[1]);
    assert_eq!(new["version"].as_i64(), Some(now.id.0));
    assert!(old["valid_to"].is_string() && new["valid_to"].is_null());
    assert_eq!(old["went_to"], serde_json::json!([now.id.0]));
    assert_eq!(new["came_from"], serde_json::json!([old["version"]]));

    // The first parcel's interior point, now and before the change.
    let inside = landdb_model::national_id::interior_point(&now.parcel.geometry).expect("interior");
    let at = |when: Option<String>| {
        let mut url = format!("{}/parcels/at?lon={}&lat={}", s.base, inside.x(), inside.y());
        if let Some(w) = when {
            url.push_str(&format!("&datetime={w}"));
        }
        url
    };
    // The server follows the feed: wait until it has the change.
    let head = s.store.feed_head().await.expect("head");
    let started = std::time::Instant::now();
    while s.engine.snapshot().position() < head && started.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, _, today) = get(&at(None)).await;
    assert_eq!(versions(&today), [now.id.0]);
    let then = before_change.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (status, _, past) = get(&at(Some(then))).await;
    assert_eq!(status, 200, "{past}");
    assert_eq!(versions(&past), [old["version"].as_i64().expect("old")]);
    assert_eq!(past["features"][0]["properties"]["land_use"], serde_json::json!(["ODT"]));

    // Items on a date, in a box around the point: the version valid then; over an interval up
    // to now, both; and the same through a temporal filter.
    let bbox = format!("{},{},{},{}", inside.x(), inside.y(), inside.x() + 1e-7, inside.y() + 1e-7);
    let old_id = old["version"].as_i64().expect("old");
    let items = |extra: String| format!("{}/collections/parcels/items?bbox={bbox}&{extra}", s.base);
    let then = before_change.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (status, _, on_date) = get(&items(format!("datetime={}", encoded(&then)))).await;
    assert_eq!(status, 200, "{on_date}");
    assert_eq!(versions(&on_date), [old_id]);
    let (_, _, since) = get(&items(format!("datetime={}/..", encoded(&then)))).await;
    assert_eq!(versions(&since), [old_id, now.id.0]);
    let (_, _, until) = get(&items(format!("datetime=../{}", encoded(&then)))).await;
    assert_eq!(versions(&until), [old_id]);
    let temporal = format!("T_INTERSECTS(INTERVAL(valid_from, valid_to), TIMESTAMP('{then}'))");
    let (_, _, filtered) = get(&items(format!("filter={}", encoded(&temporal)))).await;
    assert_eq!(versions(&filtered), [old_id]);
    let ended = "valid_to IS NULL";
    let (_, _, current) = get(&items(format!("filter={}", encoded(ended)))).await;
    assert_eq!(versions(&current), [now.id.0]);
}

/// Every page of a query, following the next links; the versions in the order given.
async fn all_pages(first: &str) -> (Vec<i64>, Vec<Value>) {
    let mut url = first.to_owned();
    let (mut ids, mut features) = (Vec::new(), Vec::new());
    loop {
        let (status, _, page) = get(&url).await;
        assert_eq!(status, 200, "{url}: {page}");
        ids.extend(versions(&page));
        features.extend(page["features"].as_array().expect("features").iter().cloned());
        match link(&page, "next") {
            Some(next) => url = next.to_owned(),
            None => return (ids, features),
        }
    }
}

/// CQL2 filters (text and JSON) and sortby, checked against the same conditions in PostGIS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_sorts_answer_what_postgis_answers() {
    let s = server(&[samples()]).await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&s.db.url).await.expect("connect");
    let view = s.engine.snapshot();
    // A small parcel chosen by its key (not by import order, which varies), so that the box around
    // it holds parcels under 300 m² for the S_WITHIN case.
    let some = view
        .parcels()
        .filter(|p| (50.0..300.0).contains(&p.area_m2()))
        .min_by_key(|p| p.key())
        .expect("a parcel between 50 and 300 m²");
    let inside = landdb_model::national_id::interior_point(&some.geometry()).expect("interior");
    let (x, y) = (inside.x(), inside.y());
    // A box of about 400 by 330 m around it.
    let (w, s_, e, n) = (x - 0.002, y - 0.0015, x + 0.002, y + 0.0015);
    let polygon = format!("POLYGON(({w} {s_}, {e} {s_}, {e} {n}, {w} {n}, {w} {s_}))");
    let cases: Vec<(String, String)> = vec![
        ("land_use = 'ODT' AND area_m2 > 150".into(), "'ODT' = ANY(land_use) AND geometry_area_m2 > 150".into()),
        (
            "commune IN ('20194', '20197') AND NOT area_m2 BETWEEN 50 AND 300".into(),
            "commune_code IN ('20194', '20197') AND NOT geometry_area_m2 BETWEEN 50 AND 300".into(),
        ),
        (
            format!("S_INTERSECTS(geometry, {polygon})"),
            format!("ST_Intersects(geom, ST_GeomFromText('{polygon}', 4326))"),
        ),
        (
            format!("S_WITHIN(geometry, {polygon}) AND area_m2 < 300"),
            format!("ST_Within(geom, ST_GeomFromText('{polygon}', 4326)) AND geometry_area_m2 < 300"),
        ),
        (
            "casei(land_use) LIKE 'o%' OR number < 3".into(),
            "EXISTS (SELECT 1 FROM unnest(land_use) u WHERE lower(u) LIKE 'o%') OR parcel_no::int < 3".into(),
        ),
    ];
    for (cql, sql) in &cases {
        let ours =
            all_pages(&format!("{}/collections/parcels/items?limit=400&filter={}", s.base, encoded(cql))).await.0;
        let theirs: Vec<i64> = sqlx::query_scalar(&format!("SELECT id FROM current_parcel WHERE {sql} ORDER BY id"))
            .fetch_all(&mut conn)
            .await
            .expect("query");
        assert!(!theirs.is_empty(), "{cql} selects something");
        assert!(theirs.len() < view.len(), "{cql} leaves something out");
        assert_eq!(ours, theirs, "{cql}");
    }
    // The same condition as cql2-json, and with the older name of the text language.
    let json = r#"{"op":"and","args":[{"op":"=","args":[{"property":"land_use"},"ODT"]},{"op":">","args":[{"property":"area_m2"},150]}]}"#;
    let (as_json, _) = all_pages(&format!(
        "{}/collections/parcels/items?limit=10000&filter-lang=cql2-json&filter={}",
        s.base,
        encoded(json)
    ))
    .await;
    let (as_text, _) = all_pages(&format!(
        "{}/collections/parcels/items?limit=10000&filter-lang=cql-text&filter={}",
        s.base,
        encoded(&cases[0].0)
    ))
    .await;
    assert_eq!(as_json, as_text);

    // sortby: the largest first across pages, ties by version, every match once; prev links
    // walk the same order back.
    let (ids, features) = all_pages(&format!(
        "{}/collections/parcels/items?limit=97&sortby=-area_m2&filter={}",
        s.base,
        encoded("commune = '20194'")
    ))
    .await;
    let theirs: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM current_parcel WHERE commune_code = '20194' ORDER BY geometry_area_m2 DESC, id",
    )
    .fetch_all(&mut conn)
    .await
    .expect("query");
    assert_eq!(ids, theirs);
    let areas: Vec<f64> = features.iter().map(|f| f["properties"]["area_m2"].as_f64().expect("area")).collect();
    assert!(areas.windows(2).all(|w| w[0] >= w[1]));
    let (_, _, first) = get(&format!("{}/collections/parcels/items?limit=5&sortby=sheet,-number", s.base)).await;
    let (_, _, second) = get(link(&first, "next").expect("next")).await;
    let back = link(&second, "prev").expect("prev");
    let (_, _, first) = get(back).await;
    assert!(versions(&first).len() <= 5 && link(&first, "next").is_some(), "{first}");

    // bbox-crs: EPSG:4326 is latitude first; a box in the province's TM-3 zone finds the parcel
    // it was drawn around.
    let (a, _) =
        all_pages(&format!("{}/collections/parcels/items?bbox={x},{y},{},{}", s.base, x + 0.002, y + 0.002)).await;
    let (b, _) = all_pages(&format!(
        "{}/collections/parcels/items?bbox={y},{x},{},{}&bbox-crs=EPSG:4326",
        s.base,
        y + 0.002,
        x + 0.002
    ))
    .await;
    assert_eq!(a, b);
    let reference = ReferenceData::embedded().expect("reference");
    let zone = reference.zone_of_commune(some.commune()).expect("zone");
    let local = landdb_crs::Transformer::wgs84_to_zone(&zone).expect("transformer");
    let c = local.coord(geo::Coord { x, y }).expect("to zone");
    let (_, _, page) = get(&format!(
        "{}/collections/parcels/items?bbox={},{},{},{}&bbox-crs=EPSG:{}",
        s.base,
        c.x - 1.0,
        c.y - 1.0,
        c.x + 1.0,
        c.y + 1.0,
        zone.epsg
    ))
    .await;
    assert!(versions(&page).contains(&some.version().0), "{page}");

    // filter-crs: the polygon drawn in the zone (as a surveyor would) selects what PostGIS selects
    // for it, and the same polygon latitude first in EPSG:4326 what it selects in CRS84.
    let corners: Vec<geo::Coord> = [(w, s_), (e, s_), (e, n), (w, n), (w, s_)]
        .iter()
        .map(|&(x, y)| local.coord(geo::Coord { x, y }).expect("to zone"))
        .collect();
    let in_zone =
        format!("POLYGON(({}))", corners.iter().map(|c| format!("{} {}", c.x, c.y)).collect::<Vec<_>>().join(", "));
    let ours = all_pages(&format!(
        "{}/collections/parcels/items?limit=400&filter-crs=EPSG:{}&filter={}",
        s.base,
        zone.epsg,
        encoded(&format!("S_INTERSECTS(geometry, {in_zone})"))
    ))
    .await
    .0;
    let theirs: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT id FROM current_parcel WHERE ST_Intersects(geom, ST_GeomFromText('{}', 4326)) ORDER BY id",
        polygon
    ))
    .fetch_all(&mut conn)
    .await
    .expect("query");
    assert!(!theirs.is_empty());
    // Vertices taken back from the zone land within micrometres of where they were drawn.
    assert_eq!(ours, theirs, "the polygon in EPSG:{}", zone.epsg);
    let lat_first = format!("POLYGON(({s_} {w}, {s_} {e}, {n} {e}, {n} {w}, {s_} {w}))");
    let ours = all_pages(&format!(
        "{}/collections/parcels/items?limit=400&filter-crs={}&filter={}",
        s.base,
        encoded("http://www.opengis.net/def/crs/EPSG/0/4326"),
        encoded(&format!("S_INTERSECTS(geometry, {lat_first})"))
    ))
    .await
    .0;
    assert_eq!(ours, theirs, "the polygon latitude first in EPSG:4326");

    // Queryables: what filter and sortby take, personal data left out for this caller.
    let (status, media, queryables) = get(&format!("{}/collections/parcels/queryables", s.base)).await;
    assert_eq!((status, media.as_str()), (200, "application/schema+json"));
    let names: BTreeSet<&str> =
        queryables["properties"].as_object().expect("properties").keys().map(String::as_str).collect();
    for name in ["geometry", "commune", "land_use", "area_m2", "valid_from"] {
        assert!(names.contains(name), "{name}: {queryables}");
    }
    assert!(!names.contains("address"));
}

async fn job_until_done(base: &str, id: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (status, _, job) = get(&format!("{base}/jobs/{id}")).await;
        assert_eq!(status, 200, "{job}");
        if job["state"] == "succeeded" || job["state"] == "failed" {
            return job;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "job {id} still {}", job["state"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn upload(file: &std::path::Path, mode: Option<&str>) -> reqwest::multipart::Form {
    let bytes = std::fs::read(file).expect("sample");
    let name = file.file_name().expect("name").to_string_lossy().into_owned();
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name(name));
    match mode {
        Some(m) => form.text("mode", m.to_owned()),
        None => form,
    }
}

/// A province uploads a dirty file: the job reports its verdicts, the accepted parcels are
/// served, and every rejected record can be downloaded with its reasons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_become_import_jobs_with_reports_and_quarantine() {
    let s = server(&[samples().join("20197.geojson")]).await;
    let client = landdb_tests::http::client();
    let before_upload = s.store.count_current().await.expect("count");
    let dirty = samples().join("../dirty-geojson/20194.geojson");
    let response =
        client.post(format!("{}/jobs", s.base)).multipart(upload(&dirty, Some("append"))).send().await.expect("upload");
    assert_eq!(response.status().as_u16(), 202);
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).expect("location").to_owned();
    let accepted: Value = response.json().await.expect("job");
    let id = accepted["id"].as_str().expect("id").to_owned();
    assert!(location.ends_with(&format!("/jobs/{id}")));
    let job = job_until_done(&s.base, &id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let report = &job["report"];
    let n = |v: &Value| v.as_u64().expect("count");
    assert!(n(&report["input"]) > 200);
    assert_eq!(n(&job["records_read"]), n(&report["input"]));
    assert_eq!(
        n(&report["accepted"]) + n(&report["accepted_with_warnings"]) + n(&report["repaired"]) + n(&report["rejected"]),
        n(&report["input"])
    );
    assert!(n(&report["rejected"]) > 0, "the dirty sample has defects: {report}");
    assert_eq!(n(&job["changes"]["quarantined"]), n(&report["rejected"]));
    assert_eq!(n(&job["changes"]["inserted"]), n(&report["input"]) - n(&report["rejected"]));

    // The full report names each rejected record and why.
    let (status, _, full) = get(&format!("{}/jobs/{id}/report", s.base)).await;
    assert_eq!(status, 200);
    let records = full["report"]["records"].as_array().expect("records");
    assert!(records.iter().filter(|r| r["verdict"] == "rejected").count() as u64 == n(&report["rejected"]));
    // The rejected records as GeoJSON, each with its reasons.
    let (status, media, rejected) = get(&format!("{}/jobs/{id}/quarantine", s.base)).await;
    assert_eq!((status, media.as_str()), (200, "application/geo+json"));
    let features = rejected["features"].as_array().expect("features");
    assert_eq!(features.len() as u64, n(&report["rejected"]));
    assert!(features.iter().all(|f| f["properties"]["_reasons"].as_array().is_some_and(|r| !r.is_empty())));
    assert!(features.iter().any(|f| f["geometry"]["type"] == "MultiPolygon"));

    // The accepted parcels are served once the engine has followed the feed.
    let head = s.store.feed_head().await.expect("head");
    let started = std::time::Instant::now();
    while s.engine.snapshot().position() < head && started.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, _, served) = get(&format!("{}/collections/parcels/items?limit=1", s.base)).await;
    assert_eq!(n(&served["numberMatched"]), before_upload + n(&job["changes"]["inserted"]));

    // The same file again: nothing new, the earlier batch named.
    let again = client.post(format!("{}/jobs", s.base)).multipart(upload(&dirty, None)).send().await.expect("upload");
    let again: Value = again.json().await.expect("job");
    let again = job_until_done(&s.base, again["id"].as_str().expect("id")).await;
    assert_eq!(again["batch"]["already_imported"], true, "{again}");

    // Bad uploads are refused by name, and nothing is started.
    let text = |name: &str, body: &str| {
        reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(body.as_bytes().to_vec()).file_name(name.to_owned()))
    };
    for (form, why) in [
        (text("notes.txt", "hello"), "notes.txt"),
        (upload(&dirty, Some("merge")), "mode=merge"),
        (reqwest::multipart::Form::new().text("mode", "append"), "no `file`"),
        (upload(&dirty, None).text("colour", "red"), "`colour`"),
    ] {
        let response = client.post(format!("{}/jobs", s.base)).multipart(form).send().await.expect("upload");
        assert_eq!(response.status().as_u16(), 400);
        let body: Value = response.json().await.expect("error");
        assert!(body["description"].as_str().is_some_and(|d| d.contains(why)), "{why}: {body}");
    }
    for path in ["/jobs/12345", "/jobs/x/report", "/jobs/1/quarantine"] {
        let (status, _, _) = get(&format!("{}{path}", s.base)).await;
        assert_eq!(status, 404, "{path}");
    }
    // A file that is not what its name says: the job fails and says why; the store is unchanged.
    let before = s.store.count_current().await.expect("count");
    let broken = client
        .post(format!("{}/jobs", s.base))
        .multipart(text("broken.gpkg", "not a GeoPackage"))
        .send()
        .await
        .expect("upload");
    let broken: Value = broken.json().await.expect("job");
    let broken = job_until_done(&s.base, broken["id"].as_str().expect("id")).await;
    assert_eq!(broken["state"], "failed", "{broken}");
    assert!(broken["error"].as_str().is_some_and(|e| e.contains("broken.gpkg")), "{broken}");
    assert_eq!(s.store.count_current().await.expect("count"), before);
}

/// Operators scrape /metrics: requests by route (the template, not the path) and status class,
/// latencies, and the engine's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_for_prometheus() {
    let s = server(&[samples().join("20194.geojson")]).await;
    for _ in 0..3 {
        get(&format!("{}/collections/parcels/items?limit=1", s.base)).await;
    }
    get(&format!("{}/collections/parcels/items?limit=0", s.base)).await;
    let response = landdb_tests::http::client().get(format!("{}/metrics", s.base)).send().await.expect("metrics");
    assert!(response.headers()["content-type"].to_str().expect("type").starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.expect("text");
    let value = |line_start: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{line_start} in {text}"))
    };
    assert!(value("landdb_http_requests_total{route=\"/collections/{id}/items\",status=\"2xx\"}") >= 3.0);
    assert!(value("landdb_http_requests_total{route=\"/collections/{id}/items\",status=\"4xx\"}") >= 1.0);
    assert!(value("landdb_http_request_duration_seconds_count{route=\"/collections/{id}/items\"}") >= 4.0);
    assert_eq!(value("landdb_engine_parcels "), s.store.count_current().await.expect("count") as f64);
    assert!(value("landdb_engine_heap_bytes ") > 0.0);
    assert!(text.contains("landdb_upload_jobs{state=\"running\"} 0"));
}

/// People get pages: every JSON resource as HTML for a browser or with f=html, features as a
/// table linking to each, the same content as the JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_html_pages_of_the_same_resources() {
    let s = server(&[samples().join("20194.geojson")]).await;
    let client = landdb_tests::http::client();
    let (_, _, json) = get(&format!("{}/collections/parcels/items?limit=3", s.base)).await;
    for (url, accept) in [
        (format!("{}/collections/parcels/items?limit=3&f=html", s.base), "*/*"),
        (format!("{}/collections/parcels/items?limit=3", s.base), "text/html,application/xhtml+xml,*/*;q=0.8"),
    ] {
        let response = client.get(&url).header("accept", accept).send().await.expect("page");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
        let page = response.text().await.expect("text");
        for id in versions(&json) {
            assert!(page.contains(&format!("href=\"/collections/parcels/items/{id}\"")), "{page}");
        }
    }
    let (status, media, _) = get(&format!("{}/collections/parcels/items?limit=3", s.base)).await;
    assert_eq!((status, media.as_str()), (200, "application/geo+json"), "JSON stays the default");
    for path in ["/collections?f=html", "/conformance?f=html", "/collections/parcels?f=html", "/?f=html"] {
        let response = client.get(format!("{}{path}", s.base)).send().await.expect("page");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8", "{path}");
    }
    let id = versions(&json)[0];
    let page = client
        .get(format!("{}/collections/parcels/items/{id}?f=html", s.base))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    assert!(page.contains("/map#18/"), "a link to the parcel on the map: {page}");
    // A page and its JSON are different representations: different tags.
    let tag = |accept: &'static str| {
        let client = client.clone();
        let url = format!("{}/collections/parcels/items?limit=3", s.base);
        async move {
            let r = client.get(url).header("accept", accept).send().await.expect("answer");
            r.headers()["etag"].to_str().expect("tag").to_owned()
        }
    };
    assert_ne!(tag("text/html").await, tag("application/geo+json").await);
}
