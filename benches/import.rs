//! The whole import pipeline on the Đà Nẵng set (read, validate, repair, reproject, national IDs,
//! duplicate and overlap checks, quarantine, COPY into PostGIS, change feed) beside `ogr2ogr`
//! loading the same files into PostGIS with `PG_USE_COPY` (no validation), in one run.
//!
//! `cargo build --release && cargo bench -p landdb-benches --bench import`

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use landdb_benches::{machine, ogr2ogr_load};
use landdb_tests::{PostgisDb, danang_files};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(files) = danang_files()? else { return Ok(()) };
    let landdb = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/landdb");
    anyhow::ensure!(landdb.exists(), "build the release binary first: cargo build --release");
    println!("machine: {}", machine());
    let input = 79_496.0;

    let peer_db = PostgisDb::create().await?;
    let ogr = ogr2ogr_load(&files, &peer_db.url)?;

    let db = PostgisDb::create().await?;
    let start = Instant::now();
    let out = Command::new(&landdb).arg("import").args(&files).env("DATABASE_URL", &db.url).output()?;
    let ours = start.elapsed().as_secs_f64();
    anyhow::ensure!(out.status.success(), "landdb import failed: {}", String::from_utf8_lossy(&out.stderr));
    println!("{}", String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default());
    println!("| what | time | rate |");
    println!("|---|---|---|");
    println!(
        "| ogr2ogr → PostGIS (PG_USE_COPY, 19 processes, no validation) | {ogr:.2} s | {:.0} records/s |",
        input / ogr
    );
    println!(
        "| landdb import → PostGIS (whole pipeline, one atomic batch) | {ours:.2} s | {:.0} records/s |",
        input / ours
    );
    println!("ratio landdb / ogr2ogr throughput: {:.2}×", ogr / ours);
    Ok(())
}
