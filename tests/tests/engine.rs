//! The in-memory engine against PostGIS: the same parcels for the same question, every time.
//! A mismatch is a failure, not a tolerance.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use geo::{Coord, Rect};
use landdb_engine::{Engine, View};
use landdb_ingest::import::{Mode, import};
use landdb_ingest::pipeline::Options;
use landdb_ingest::profiles::FieldMapping;
use landdb_model::{ReferenceData, VersionId};
use landdb_store::{AnyStore, DatabaseUrl, FeedWaiter, ParcelStore};
use landdb_tests::PostgisDb;
use rand::{Rng, SeedableRng};
use sqlx::Row;

async fn imported(paths: &[PathBuf]) -> (PostgisDb, AnyStore) {
    let db = PostgisDb::create().await.expect("PostGIS");
    let store = AnyStore::open(&DatabaseUrl::parse(&db.url).expect("url")).await.expect("open");
    let reference = ReferenceData::embedded().expect("reference");
    let options = Options { crs_override: None, mapping: FieldMapping::builtin().expect("profile"), area: None };
    import(&store, paths, &reference, &options, Mode::Append, &|_| {}).await.expect("import commits");
    // Fresh statistics, as autovacuum would gather within a minute: without them the planner
    // takes the new table for a few hundred rows and scans its whole key index for every point.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.expect("connect");
    sqlx::query("ANALYZE parcel_version").execute(&mut conn).await.expect("analyze");
    (db, store)
}

/// Random points over the data, plus vertices of parcels (exactly on boundaries, most of them
/// shared by two or more parcels).
fn points(snapshot: &View, random: usize, vertices: usize) -> Vec<Coord<f64>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let extent = snapshot.extent().expect("parcels");
    let mut out: Vec<Coord<f64>> = (0..random)
        .map(|_| Coord {
            x: rng.gen_range(extent.min().x..extent.max().x),
            y: rng.gen_range(extent.min().y..extent.max().y),
        })
        .collect();
    let parcels: Vec<_> = snapshot.parcels().collect();
    for _ in 0..vertices {
        let p = parcels[rng.gen_range(0..parcels.len())];
        let g = p.geometry();
        let ring = &g.0[0].exterior().0;
        out.push(ring[rng.gen_range(0..ring.len())]);
    }
    out
}

/// Rows of (1-based ordinal of the question, version found), by question.
fn by_ordinal(rows: Vec<sqlx::postgres::PgRow>) -> BTreeMap<usize, BTreeSet<i64>> {
    let mut found: BTreeMap<usize, BTreeSet<i64>> = BTreeMap::new();
    for row in rows {
        let i: i64 = row.get(0);
        found.entry(usize::try_from(i - 1).expect("ordinal")).or_default().insert(row.get(1));
    }
    found
}

/// For each point, the versions PostGIS finds with `ST_Intersects`.
async fn postgis_at_points(db: &PostgisDb, points: &[Coord<f64>]) -> BTreeMap<usize, BTreeSet<i64>> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.expect("connect");
    let xs: Vec<f64> = points.iter().map(|p| p.x).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.y).collect();
    let rows = sqlx::query(
        "SELECT p.i, v.id FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS p(x, y, i) \
         JOIN current_parcel v ON ST_Intersects(v.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4326))",
    )
    .bind(&xs)
    .bind(&ys)
    .fetch_all(&mut conn)
    .await
    .expect("query");
    by_ordinal(rows)
}

/// For each box, the versions PostGIS finds with `ST_Intersects`.
async fn postgis_in_boxes(db: &PostgisDb, boxes: &[Rect<f64>]) -> BTreeMap<usize, BTreeSet<i64>> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.expect("connect");
    let col = |f: fn(&Rect<f64>) -> f64| boxes.iter().map(f).collect::<Vec<f64>>();
    let rows = sqlx::query(
        "SELECT b.i, v.id FROM unnest($1::float8[], $2::float8[], $3::float8[], $4::float8[]) \
         WITH ORDINALITY AS b(x0, y0, x1, y1, i) \
         JOIN current_parcel v ON ST_Intersects(v.geom, ST_MakeEnvelope(b.x0, b.y0, b.x1, b.y1, 4326))",
    )
    .bind(col(|r| r.min().x))
    .bind(col(|r| r.min().y))
    .bind(col(|r| r.max().x))
    .bind(col(|r| r.max().y))
    .fetch_all(&mut conn)
    .await
    .expect("query");
    by_ordinal(rows)
}

/// For each polygon (WKT), the versions PostGIS finds with `ST_Intersects`.
async fn postgis_in_polygons(db: &PostgisDb, polygons: &[geo::Polygon<f64>]) -> BTreeMap<usize, BTreeSet<i64>> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.expect("connect");
    // Rust prints the shortest text that reads back to the same f64: the WKT is exact.
    let texts: Vec<String> = polygons
        .iter()
        .map(|p| {
            let ring: Vec<String> = p.exterior().0.iter().map(|c| format!("{} {}", c.x, c.y)).collect();
            format!("POLYGON(({}))", ring.join(", "))
        })
        .collect();
    let rows = sqlx::query(
        "SELECT g.i, v.id FROM unnest($1::text[]) WITH ORDINALITY AS g(wkt, i) \
         JOIN current_parcel v ON ST_Intersects(v.geom, ST_GeomFromText(g.wkt, 4326))",
    )
    .bind(&texts)
    .fetch_all(&mut conn)
    .await
    .expect("query");
    by_ordinal(rows)
}

async fn agrees_with_postgis(paths: &[PathBuf], random_points: usize, vertices: usize, boxes: usize) {
    let (db, store) = imported(paths).await;
    let engine = Engine::load(&store).await.expect("engine loads");
    let snapshot = engine.snapshot();
    assert_eq!(snapshot.len() as u64, store.count_current().await.expect("count"));

    let points = points(&snapshot, random_points, vertices);
    let expected = postgis_at_points(&db, &points).await;
    let mut mismatches = Vec::new();
    let mut on_shared_boundary = 0;
    for (i, p) in points.iter().enumerate() {
        let ours: BTreeSet<i64> = snapshot.at_point(p.x, p.y).iter().map(|info| info.version().0).collect();
        let theirs = expected.get(&i).cloned().unwrap_or_default();
        on_shared_boundary += usize::from(theirs.len() > 1);
        if ours != theirs {
            mismatches.push((i, *p, ours, theirs));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} points differ, first: {:?}",
        mismatches.len(),
        points.len(),
        mismatches.first()
    );
    assert!(on_shared_boundary > 0, "some points lie on shared boundaries");

    // Boxes of about 200 m × 200 m (0.0018° of latitude), some much smaller.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let boxes: Vec<Rect<f64>> = points
        .iter()
        .take(boxes)
        .map(|p| {
            let half = if rng.gen_bool(0.5) { 0.0009 } else { rng.gen_range(0.000_001..0.0002) };
            Rect::new((p.x - half, p.y - half), (p.x + half, p.y + half))
        })
        .collect();
    let expected = postgis_in_boxes(&db, &boxes).await;
    for (i, b) in boxes.iter().enumerate() {
        let ours: BTreeSet<i64> = snapshot.in_box(*b).iter().map(|info| info.version().0).collect();
        assert_eq!(ours, expected.get(&i).cloned().unwrap_or_default(), "box {i}: {b:?}");
    }

    // Triangles and quadrilaterals of tens to hundreds of metres, some of them not convex.
    let polygons: Vec<geo::Polygon<f64>> = points
        .iter()
        .skip(boxes.len())
        .take(boxes.len())
        .map(|p| {
            let corners = rng.gen_range(3..=5);
            let ring: Vec<(f64, f64)> = (0..corners)
                .map(|k| {
                    let angle = std::f64::consts::TAU * (k as f64 + rng.gen_range(0.0..0.8)) / corners as f64;
                    let r = rng.gen_range(0.000_2..0.002);
                    (p.x + r * angle.cos(), p.y + r * angle.sin())
                })
                .collect();
            geo::Polygon::new(ring.into(), vec![])
        })
        .collect();
    let expected = postgis_in_polygons(&db, &polygons).await;
    for (i, polygon) in polygons.iter().enumerate() {
        let ours: BTreeSet<i64> = snapshot.intersecting(polygon).iter().map(|info| info.version().0).collect();
        assert_eq!(ours, expected.get(&i).cloned().unwrap_or_default(), "polygon {i}: {polygon:?}");
    }

    // Parcels within a distance in metres, as ST_DWithin on the geography (a geometry box first,
    // so that PostGIS can use its index: a degree is more than 100 km here).
    let queries: Vec<(Coord<f64>, f64)> =
        points.iter().skip(2 * boxes.len()).take(boxes.len()).map(|p| (*p, rng.gen_range(0.0..250.0))).collect();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.expect("connect");
    let rows = sqlx::query(
        "SELECT q.i, v.id FROM unnest($1::float8[], $2::float8[], $3::float8[]) WITH ORDINALITY AS q(x, y, d, i) \
         JOIN current_parcel v ON ST_DWithin(v.geom, ST_SetSRID(ST_MakePoint(q.x, q.y), 4326), q.d / 100000.0) \
         AND ST_DWithin(v.geom::geography, ST_SetSRID(ST_MakePoint(q.x, q.y), 4326)::geography, q.d)",
    )
    .bind(queries.iter().map(|(p, _)| p.x).collect::<Vec<_>>())
    .bind(queries.iter().map(|(p, _)| p.y).collect::<Vec<_>>())
    .bind(queries.iter().map(|(_, d)| *d).collect::<Vec<_>>())
    .fetch_all(&mut conn)
    .await
    .expect("query");
    let expected = by_ordinal(rows);
    for (i, (p, d)) in queries.iter().enumerate() {
        let ours: BTreeSet<i64> = snapshot.within(p.x, p.y, *d).iter().map(|(info, _)| info.version().0).collect();
        let theirs = expected.get(&i).cloned().unwrap_or_default();
        if ours != theirs {
            // Say how far each parcel in dispute is, by the engine and by PostGIS.
            let mut disputed = Vec::new();
            for v in theirs.symmetric_difference(&ours) {
                let pg: f64 = sqlx::query_scalar(
                    "SELECT ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography) \
                     FROM parcel_version WHERE id = $3",
                )
                .bind(p.x)
                .bind(p.y)
                .bind(*v)
                .fetch_one(&mut conn)
                .await
                .expect("distance");
                let engine = snapshot.by_version(VersionId(*v)).map(|parcel| parcel.distance_m(p.x, p.y));
                disputed.push(format!("version {v}: engine {engine:?} m, PostGIS {pg} m"));
            }
            panic!("{d} m of {p:?}: engine {ours:?}, PostGIS {theirs:?}; {}", disputed.join("; "));
        }
        // The k nearest are the first k of all parcels within reach, by the same distance.
        // (within() itself was just checked against PostGIS: reaching one metre past the fifth
        // nearest, it must find no parcel nearer that nearest() missed.)
        let found = snapshot.nearest(p.x, p.y, 5);
        let nearest: Vec<i64> = found.iter().map(|(info, _)| info.version().0).collect();
        let fifth = found.last().map_or(0.0, |(_, d)| *d);
        let mut reach = snapshot.within(p.x, p.y, fifth + 1.0);
        reach.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.version().cmp(&b.0.version())));
        let brute: Vec<i64> = reach.iter().take(5).map(|(info, _)| info.version().0).collect();
        assert_eq!(nearest, brute, "nearest to {p:?}");
    }

    // The compact encoding holds every boundary exactly as the store does, bit for bit (the
    // import snaps to the storage grid, and grid units decode to the same doubles).
    let sample: Vec<VersionId> = snapshot.parcels().step_by(7).map(|p| p.version()).collect();
    for stored in store.versions(&sample).await.expect("read") {
        let ours = snapshot.by_version(stored.id).expect("in the engine");
        assert_eq!(ours.geometry(), stored.parcel.geometry, "boundary of {:?}", stored.id);
        assert_eq!(ours.area_m2().to_bits(), stored.parcel.geometry_area_m2.to_bits());
        assert_eq!(ours.address(), stored.parcel.address);
        assert_eq!(ours.land_use(), stored.parcel.land_use);
    }

    // Lookups by key and national ID find what the store finds.
    for info in snapshot.parcels().step_by(97) {
        let stored = store.current_by_key(&info.key()).await.expect("read").expect("current");
        assert_eq!(stored.id, info.version());
        assert_eq!(snapshot.by_key(&info.key()).map(|p| p.version()), Some(info.version()));
        let by_id: BTreeSet<i64> = snapshot.by_national_id(&info.national_id()).iter().map(|p| p.version().0).collect();
        let stored: BTreeSet<i64> =
            store.current_by_national_id(&info.national_id()).await.expect("read").iter().map(|v| v.id.0).collect();
        assert_eq!(by_id, stored);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_and_boxes_agree_with_postgis_on_generated_data() {
    let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data-samples/geojson");
    agrees_with_postgis(&[samples], 20_000, 2_000, 2_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_and_boxes_agree_with_postgis_on_da_nang() {
    let Some(dir) = landdb_tests::danang_dir() else { return };
    agrees_with_postgis(&[dir], 100_000, 10_000, 10_000).await;
}

/// Two engines on one PostGIS: an import through one store connection is seen by the other
/// engine within a second, through the change feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_sees_an_import_within_a_second() {
    let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data-samples/geojson");
    let (db, first) = imported(&[samples.join("20194.geojson")]).await;
    let second = AnyStore::open(&DatabaseUrl::parse(&db.url).expect("url")).await.expect("open");
    let a = Engine::load(&first).await.expect("engine a");
    let b = Engine::load(&second).await.expect("engine b");
    let before = b.snapshot();
    let mut waiter = second.feed_waiter().await.expect("waiter");

    let reference = ReferenceData::embedded().expect("reference");
    let options = Options { crs_override: None, mapping: FieldMapping::builtin().expect("profile"), area: None };
    import(&first, &[samples.join("20197.geojson")], &reference, &options, Mode::Append, &|_| {})
        .await
        .expect("import");
    // From the commit on.
    let started = std::time::Instant::now();
    while b.snapshot().position() == before.position() && started.elapsed() < Duration::from_secs(1) {
        waiter.wait(Duration::from_millis(200)).await.expect("wait");
        b.follow(&second).await.expect("follow");
    }
    let after = b.snapshot();
    assert!(started.elapsed() < Duration::from_secs(1), "seen {:?} after the commit", started.elapsed());
    assert_eq!(after.len() as u64, second.count_current().await.expect("count"));
    assert!(after.len() > before.len());
    assert_eq!(before.len(), a.snapshot().len(), "the old snapshot is untouched for its readers");
    let new = after.parcels().find(|p| p.commune().as_str() == "20197").expect("a parcel of the new commune");
    let g = new.geometry();
    let inside = landdb_model::national_id::interior_point(&g).expect("interior");
    assert!(after.at_point(inside.x(), inside.y()).iter().any(|p| p.version() == new.version()));
}

/// A snapshot file restarts an engine that answers like one loaded from the store, and catches
/// up through the feed with what was imported after it was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_file_restarts_the_engine_and_the_feed_catches_it_up() {
    let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data-samples/geojson");
    let (_db, store) = imported(&[samples.join("20194.geojson")]).await;
    let dir = std::env::temp_dir().join(format!("landdb-snapshot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("engine.snap");
    // Progress is told in rising byte counts that end at the file's size.
    let told = std::sync::Mutex::new(Vec::new());
    let size = Engine::load(&store)
        .await
        .expect("load")
        .save_reporting(&file, &|n| told.lock().expect("lock").push(n))
        .expect("saved");
    let told = told.into_inner().expect("lock");
    assert!(told.windows(2).all(|w| w[0] < w[1]) && !told.is_empty(), "{told:?}");
    assert_eq!(std::fs::metadata(&file).expect("written").len(), size);
    assert_eq!(told.last().copied(), Some(size));

    let reference = ReferenceData::embedded().expect("reference");
    let options = Options { crs_override: None, mapping: FieldMapping::builtin().expect("profile"), area: None };
    import(&store, &[samples.join("20197.geojson")], &reference, &options, Mode::Append, &|_| {})
        .await
        .expect("import");

    let restarted = Engine::open(&store, &file).await.expect("open").snapshot();
    let loaded = Engine::load(&store).await.expect("load").snapshot();
    assert_eq!(restarted.position(), loaded.position());
    assert_eq!(restarted.len(), loaded.len());
    for p in points(&loaded, 5_000, 500) {
        let ids = |v: Vec<landdb_engine::Parcel<'_>>| v.iter().map(|i| i.version()).collect::<BTreeSet<_>>();
        assert_eq!(ids(restarted.at_point(p.x, p.y)), ids(loaded.at_point(p.x, p.y)), "{p:?}");
    }
    for info in loaded.parcels() {
        let other = restarted.by_version(info.version()).expect("same parcels");
        let fields =
            |p: landdb_engine::Parcel<'_>| (p.key(), p.national_id(), p.land_use(), p.area_m2().to_bits(), p.address());
        assert_eq!(fields(other), fields(info));
        assert_eq!(other.geometry(), info.geometry(), "boundaries bit for bit");
    }

    // A damaged file is refused, not read into wrong answers.
    Engine::load(&store).await.expect("load").save(&file).expect("saved");
    let mut bytes = std::fs::read(&file).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&file, &bytes).expect("write");
    let e = Engine::open(&store, &file).await.expect_err("refused");
    assert!(e.to_string().contains("damaged") || e.to_string().contains("not a landdb snapshot"), "{e}");
    bytes.truncate(middle);
    std::fs::write(&file, &bytes).expect("write");
    let e = Engine::open(&store, &file).await.expect_err("refused");
    assert!(e.to_string().contains("not a landdb snapshot"), "{e}");

    std::fs::write(&file, b"not a snapshot at all").expect("write");
    let e = Engine::open(&store, &file).await.expect_err("refused");
    assert!(e.to_string().contains("engine.snap") && e.to_string().contains("not a landdb snapshot"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
