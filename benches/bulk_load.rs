//! Loading the 79,496 Đà Nẵng parcels: landdb's bulk path (COPY into PostGIS, and the embedded
//! store) beside `ogr2ogr` loading the same files into PostGIS with `PG_USE_COPY`, in one run.
//!
//! `cargo bench -p landdb-benches --bench bulk_load` (needs ../shared/data/danang and tools/setup).

use std::time::Instant;

use landdb_benches::{machine, ogr2ogr_load, timed};
use landdb_ingest::load::{accepted_parcels, store_parcels};
use landdb_model::ReferenceData;
use landdb_store::{AnyStore, DatabaseUrl, ParcelStore};
use landdb_tests::{EmbeddedDb, PostgisDb, danang_files};

fn rate(n: usize, secs: f64) -> String {
    format!("{:.0} parcels/s", n as f64 / secs)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(files) = danang_files()? else { return Ok(()) };
    let reference = ReferenceData::embedded()?;
    println!("machine: {}", machine());

    // Peer: ogr2ogr, one process per file as an operator would run it, COPY mode.
    let peer_db = PostgisDb::create().await?;
    let ogr_secs = ogr2ogr_load(&files, &peer_db.url)?;

    // landdb: the pipeline's accepted parcels (read, checked, normalised), then the store's bulk path.
    let (parcels, read_time) = timed(|| accepted_parcels(&reference, &files, &std::env::temp_dir()));
    let parcels = parcels?;
    let n_input = 79_496;
    let n = parcels.len();

    let pg_db = PostgisDb::create().await?;
    let pg = AnyStore::open(&DatabaseUrl::parse(&pg_db.url)?).await?;
    let start = Instant::now();
    store_parcels(&pg, "danang".into(), &parcels, serde_json::json!({})).await?;
    let pg_secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(pg.count_current().await? == n as u64, "PostGIS holds every loaded parcel");

    let embedded_db = EmbeddedDb::create();
    let embedded = AnyStore::open(&DatabaseUrl::Sqlite(embedded_db.path.clone())).await?;
    let start = Instant::now();
    store_parcels(&embedded, "danang".into(), &parcels, serde_json::json!({})).await?;
    let sqlite_secs = start.elapsed().as_secs_f64();

    let read_secs = read_time.as_secs_f64();
    println!("input records: {n_input}; parcels accepted and loaded: {n}");
    println!("| what | time | rate |");
    println!("|---|---|---|");
    println!(
        "| ogr2ogr → PostGIS (PG_USE_COPY, 19 files, {n_input} features) | {ogr_secs:.2} s | {} |",
        rate(n_input, ogr_secs)
    );
    println!(
        "| landdb read and validate (the import pipeline without the store) | {read_secs:.2} s | {} |",
        rate(n_input, read_secs)
    );
    println!("| landdb store bulk path → PostGIS (COPY, one batch) | {pg_secs:.2} s | {} |", rate(n, pg_secs));
    println!(
        "| landdb read + PostGIS load, end to end | {:.2} s | {} |",
        read_secs + pg_secs,
        rate(n, read_secs + pg_secs)
    );
    println!(
        "| landdb store bulk path → embedded SQLite (one batch) | {sqlite_secs:.2} s | {} |",
        rate(n, sqlite_secs)
    );
    println!("ratio landdb end-to-end / ogr2ogr: {:.2}×", ogr_secs / (read_secs + pg_secs));
    Ok(())
}
