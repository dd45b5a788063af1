//! The in-memory engine against PostGIS on the Đà Nẵng parcels: exact point lookups and
//! ~200 m box queries per second, in process on every core (rayon), and the same queries through
//! pgbench (2 clients, GiST index) in the same run.
//!
//! `cargo bench -p landdb-benches --bench engine` (needs ../shared/data/danang);
//! `LANDDB_BENCH_ONLY=points` (or `boxes`) stops after those queries, for a profiler.

use std::path::PathBuf;
use std::process::Command;

use geo::{Coord, Rect};
use landdb_benches::{machine, timed};
use landdb_engine::{Engine, ParcelRecord};
use landdb_ingest::import::{Mode, import};
use landdb_ingest::pipeline::Options;
use landdb_ingest::profiles::FieldMapping;
use landdb_model::{FeedPosition, ReferenceData, VersionId};
use landdb_store::{AnyStore, DatabaseUrl};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

/// pgbench over `script` for `seconds` with 2 clients; its transactions per second.
fn pgbench(url: &str, script: &str, seconds: u32) -> anyhow::Result<f64> {
    let dir = std::env::temp_dir().join(format!("landdb-pgbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("query.sql");
    std::fs::write(&file, script)?;
    let out = Command::new("pgbench")
        .args(["-n", "-c", "2", "-j", "2", "-T", &seconds.to_string(), "-f"])
        .arg(&file)
        .arg(url)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "pgbench failed: {}", String::from_utf8_lossy(&out.stderr));
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output: {text}"))
}

fn main() -> anyhow::Result<()> {
    let Some(dir) = landdb_tests::danang_dir() else { return Ok(()) };
    println!("machine: {}", machine());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (db, engine) = runtime.block_on(async {
        let db = landdb_tests::PostgisDb::create().await?;
        let store = AnyStore::open(&DatabaseUrl::parse(&db.url)?).await?;
        let reference = ReferenceData::embedded()?;
        let options =
            Options { crs_override: None, mapping: FieldMapping::builtin().map_err(anyhow::Error::msg)?, area: None };
        import(&store, &[PathBuf::from(&dir)], &reference, &options, Mode::Append, &|_| {}).await?;
        // PostGIS at its best: fresh statistics, as autovacuum would gather within a minute.
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await?;
        sqlx::query("ANALYZE parcel_version").execute(&mut conn).await?;
        let (engine, took) = {
            let start = std::time::Instant::now();
            let engine = Engine::load(&store).await?;
            (engine, start.elapsed())
        };
        println!("engine loaded from PostGIS in {:.2} s", took.as_secs_f64());
        anyhow::Ok((db, engine))
    })?;
    let snapshot = engine.snapshot();
    let extent = snapshot.extent().ok_or_else(|| anyhow::anyhow!("no parcels"))?;
    println!(
        "{} parcels, {} bytes of heap ({:.0} bytes a parcel)",
        snapshot.len(),
        snapshot.heap_bytes(),
        snapshot.heap_bytes() as f64 / snapshot.len() as f64
    );
    for (part, bytes) in snapshot.heap_parts() {
        println!("  {part}: {:.1} bytes a parcel", bytes as f64 / snapshot.len() as f64);
    }

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let points: Vec<Coord<f64>> = (0..4_000_000)
        .map(|_| Coord {
            x: rng.gen_range(extent.min().x..extent.max().x),
            y: rng.gen_range(extent.min().y..extent.max().y),
        })
        .collect();
    // Each figure is the median of three rounds: the machine is shared and noisy.
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rounds = |f: &dyn Fn() -> (usize, std::time::Duration)| (0..3).map(|_| f()).collect::<Vec<_>>();
    let only = std::env::var("LANDDB_BENCH_ONLY").unwrap_or_default();
    let point_rounds = if only == "boxes" {
        vec![(0, std::time::Duration::from_secs(1))]
    } else {
        rounds(&|| {
            timed(|| {
                points
                    .par_iter()
                    .map(|p| {
                        let mut n = 0;
                        snapshot.each_at_point(p.x, p.y, |_| n += 1);
                        n
                    })
                    .sum::<usize>()
            })
        })
    };
    let hits = point_rounds[0].0;
    // For a profiler: stop after one kind of query.
    if only == "points" {
        println!("points: {point_rounds:?}");
        return Ok(());
    }
    let point_rate = median(point_rounds.iter().map(|(_, t)| points.len() as f64 / t.as_secs_f64()).collect());
    // About 200 m × 200 m at 16° N.
    let (dx, dy) = (0.001_87, 0.001_80);
    let boxes: Vec<Rect<f64>> =
        points[..1_000_000].iter().map(|p| Rect::new((p.x, p.y), (p.x + dx, p.y + dy))).collect();
    let box_rounds = rounds(&|| {
        timed(|| {
            boxes
                .par_iter()
                .map_init(Vec::new, |ids, b| {
                    ids.clear();
                    snapshot.each_in_box(*b, |p| ids.push(p.version()));
                    ids.len()
                })
                .sum::<usize>()
        })
    });
    let found = box_rounds[0].0;
    if only == "boxes" {
        println!("boxes: {box_rounds:?}");
        return Ok(());
    }
    let box_rate = median(box_rounds.iter().map(|(_, t)| boxes.len() as f64 / t.as_secs_f64()).collect());

    // Distances: parcels within 100 m, and the five nearest.
    let near = &points[..200_000];
    let within_rounds =
        rounds(&|| timed(|| near.par_iter().map(|p| snapshot.within(p.x, p.y, 100.0).len()).sum::<usize>()));
    let within_rate = median(within_rounds.iter().map(|(_, t)| near.len() as f64 / t.as_secs_f64()).collect());
    let nearest_rounds =
        rounds(&|| timed(|| near.par_iter().map(|p| snapshot.nearest(p.x, p.y, 5).len()).sum::<usize>()));
    let nearest_rate = median(nearest_rounds.iter().map(|(_, t)| near.len() as f64 / t.as_secs_f64()).collect());

    // 10,000 changes from the feed: 5,000 parcels retired and 5,000 new versions of them.
    let retired: Vec<VersionId> = snapshot.parcels().take(5_000).map(|p| p.version()).collect();
    let top = snapshot.parcels().map(|p| p.version().0).max().unwrap_or(0);
    let created: Vec<ParcelRecord> = snapshot
        .parcels()
        .take(5_000)
        .enumerate()
        .map(|(i, p)| ParcelRecord { version: VersionId(top + 1 + i as i64), ..p.record() })
        .collect();
    let apply_ms = median(
        (0..3)
            .map(|_| {
                let created = created.clone();
                let (view, took) = timed(|| snapshot.apply(created, &retired, FeedPosition(1)));
                assert_eq!(view.len(), snapshot.len());
                took.as_secs_f64() * 1000.0
            })
            .collect(),
    );

    let (x0, y0) = (extent.min().x, extent.min().y);
    let (w, h) = (extent.width(), extent.height());
    let point_script = format!(
        "\\set x {x0} + random(0, 1000000) * {w} / 1000000.0\n\\set y {y0} + random(0, 1000000) * {h} / 1000000.0\n\
         SELECT id FROM current_parcel WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326));\n"
    );
    let box_script = format!(
        "\\set x {x0} + random(0, 1000000) * {w} / 1000000.0\n\\set y {y0} + random(0, 1000000) * {h} / 1000000.0\n\
         SELECT id FROM current_parcel WHERE ST_Intersects(geom, ST_MakeEnvelope(:x, :y, :x + {dx}, :y + {dy}, 4326));\n"
    );
    let pg_points = pgbench(&db.url, &point_script, 10)?;
    let pg_boxes = pgbench(&db.url, &box_script, 10)?;

    println!("| what | landdb engine (2 cores, in process) | PostGIS via pgbench (2 clients) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| exact point lookup ({} points, {hits} hits) | {point_rate:.0}/s | {pg_points:.0}/s | {:.0}× |",
        points.len(),
        point_rate / pg_points
    );
    println!(
        "| ~200 m box, parcel IDs ({} boxes, {:.1} parcels each) | {box_rate:.0}/s | {pg_boxes:.0}/s | {:.0}× |",
        boxes.len(),
        found as f64 / boxes.len() as f64,
        box_rate / pg_boxes
    );
    println!(
        "| parcels within 100 m, metres on the spheroid ({:.1} parcels each) | {within_rate:.0}/s | | |",
        within_rounds[0].0 as f64 / near.len() as f64
    );
    println!("| five nearest parcels | {nearest_rate:.0}/s | | |");
    println!("| applying 10,000 feed changes (5,000 retired, 5,000 created) | {apply_ms:.1} ms | | |");
    drop(db);
    Ok(())
}
