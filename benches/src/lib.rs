//! Shared helpers of the benchmarks: timing, the machine line every figure carries, and peers.

use std::time::{Duration, Instant};

/// Runs `f` and returns its result with the wall time it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

/// `cores, memory, CPU model`, for the RESULTS.md line.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("unknown CPU", |m| m.trim_start_matches([' ', '\t', ':']));
    format!("{cores} cores, {mem_gib:.0} GiB, {model}")
}

/// The `PG:` connection string GDAL wants, from a `postgres://user:pass@host:port/db` URL.
pub fn gdal_pg(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let (auth, hostdb) = rest.split_once('@').unwrap_or(("", rest));
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let (hostport, db) = hostdb.split_once('/').unwrap_or((hostdb, ""));
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    format!("PG:host={host} port={port} dbname={db} user={user} password={password}")
}

/// The peer: `ogr2ogr` loading `files` into PostGIS at `url` with `PG_USE_COPY`, one process per
/// file as an operator would run it. Returns the seconds it took.
pub fn ogr2ogr_load(files: &[std::path::PathBuf], url: &str) -> anyhow::Result<f64> {
    let start = Instant::now();
    for (i, file) in files.iter().enumerate() {
        let mode: &[&str] = if i == 0 { &[] } else { &["-append"] };
        let status = std::process::Command::new("ogr2ogr")
            .env("PG_USE_COPY", "YES")
            .args(["-f", "PostgreSQL", &gdal_pg(url)])
            .arg(file)
            .args(["-nln", "parcels", "-nlt", "PROMOTE_TO_MULTI", "-lco", "GEOMETRY_NAME=geom", "-gt", "65536"])
            .args(mode)
            .stderr(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "ogr2ogr failed on {}", file.display());
    }
    Ok(start.elapsed().as_secs_f64())
}
