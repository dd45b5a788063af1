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

/// Core-seconds the machine has been busy (every process), from `/proc/stat`.
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    // user, nice, system, (idle, iowait), irq, softirq, steal
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| ticks.get(*i)).sum();
    busy / 100.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(files) = danang_files()? else { return Ok(()) };
    let landdb = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/landdb");
    anyhow::ensure!(landdb.exists(), "build the release binary first: cargo build --release");
    println!("machine: {}", machine());
    let input = 79_496.0;
    let rounds = 3;
    println!(
        "| round | ogr2ogr | landdb import | ratio (ogr2ogr time / landdb time) | landdb CPU a record | the rest of the machine a record |"
    );
    println!("|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let peer_db = PostgisDb::create().await?;
        let ogr = ogr2ogr_load(&files, &peer_db.url)?;
        drop(peer_db);

        let db = PostgisDb::create().await?;
        let busy = machine_busy();
        let start = Instant::now();
        // `time` reports landdb's own CPU; the machine's, less landdb's, is PostgreSQL's (and
        // what little else runs).
        let out = Command::new("/usr/bin/time")
            .args(["-f", "landdb-cpu %U %S"])
            .arg(&landdb)
            .arg("import")
            .args(&files)
            .env("DATABASE_URL", &db.url)
            .output()?;
        let ours = start.elapsed().as_secs_f64();
        let machine = machine_busy() - busy;
        anyhow::ensure!(out.status.success(), "landdb import failed: {}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let cpu: f64 = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("landdb-cpu "))
            .flat_map(|l| l.split_whitespace().filter_map(|t| t.parse::<f64>().ok()).collect::<Vec<_>>())
            .sum();
        if round == 1 {
            eprintln!("{}", String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default());
        }
        let ratio = ogr / ours;
        ratios.push(ratio);
        println!(
            "| {round} | {ogr:.2} s | {ours:.2} s | {ratio:.2}× | {:.0} µs | {:.0} µs |",
            cpu / input * 1e6,
            (machine - cpu).max(0.0) / input * 1e6
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!("median ratio landdb / ogr2ogr throughput: {:.2}×", ratios[ratios.len() / 2]);
    Ok(())
}
