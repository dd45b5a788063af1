//! Building the engine from a large store: time and memory a parcel.
//!
//! `LANDDB_BENCH_DATABASE=postgres://… cargo bench -p landdb-benches --bench engine_load`, on a
//! store filled beforehand (for example with `landdb-gen generate` and `landdb import`; see
//! RESULTS.md). Without the variable it does nothing.

use landdb_benches::machine;
use landdb_engine::Engine;
use landdb_store::{AnyStore, DatabaseUrl};

/// Resident memory of this process, in bytes.
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

fn main() -> anyhow::Result<()> {
    let Ok(url) = std::env::var("LANDDB_BENCH_DATABASE") else {
        eprintln!("skipped: set LANDDB_BENCH_DATABASE to a filled store");
        return Ok(());
    };
    println!("machine: {}", machine());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = AnyStore::open(&DatabaseUrl::parse(&url)?).await?;
        let before = resident();
        let start = std::time::Instant::now();
        let engine = Engine::load(&store).await?;
        let took = start.elapsed();
        let view = engine.snapshot();
        let grown = resident().saturating_sub(before);
        println!(
            "| {} parcels | loaded in {:.1} s | heap {:.0} bytes a parcel (counted) | resident growth {:.0} bytes a parcel |",
            view.len(),
            took.as_secs_f64(),
            view.heap_bytes() as f64 / view.len() as f64,
            grown as f64 / view.len() as f64
        );
        for (part, bytes) in view.heap_parts() {
            println!("  {part}: {:.1} bytes a parcel", bytes as f64 / view.len() as f64);
        }
        let file = std::env::temp_dir().join(format!("landdb-bench-{}.snap", std::process::id()));
        let start = std::time::Instant::now();
        engine.save(&file)?;
        let saved = start.elapsed();
        let size = std::fs::metadata(&file)?.len();
        drop(view);
        drop(engine);
        let start = std::time::Instant::now();
        let reopened = Engine::open(&store, &file).await?;
        let opened = start.elapsed();
        println!(
            "| snapshot file: {:.0} MB, written in {:.1} s | engine opened from it in {:.1} s ({} parcels) |",
            size as f64 / 1e6,
            saved.as_secs_f64(),
            opened.as_secs_f64(),
            reopened.snapshot().len()
        );
        let _ = std::fs::remove_file(&file);
        anyhow::Ok(())
    })
}
