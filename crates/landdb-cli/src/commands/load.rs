//! `landdb load`: GeoJSON parcels into the store as one atomic batch.

use std::path::PathBuf;

use anyhow::Context as _;
use landdb_ingest::load::{LoadReport, load_files};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// GeoJSON files (or directories of them).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

pub async fn run(context: &crate::Context, args: Args) -> anyhow::Result<()> {
    let reference = context.reference()?;
    let store = context.store().await?;
    let files = expand(&args.paths)?;
    let report = load_files(&store, &reference, &files).await?;
    print_report(&report);
    Ok(())
}

/// The GeoJSON files among `paths`, directories expanded, in name order.
pub fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("geojson")))
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(path.clone());
        }
    }
    anyhow::ensure!(!files.is_empty(), "no GeoJSON files in {}", display_all(paths));
    Ok(files)
}

fn display_all(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

pub fn print_report(report: &LoadReport) {
    if let Some(batch) = &report.batch {
        println!("batch {} committed: {} of {} records loaded", batch.id, report.loaded, report.input);
    }
    if !report.duplicate_keys.is_empty() {
        println!("{} records skipped: natural key already seen in this load", report.duplicate_keys.len());
    }
    if !report.rejected.is_empty() {
        println!("{} records rejected:", report.rejected.len());
        for e in report.rejected.iter().take(10) {
            println!("  {e}");
        }
        if report.rejected.len() > 10 {
            println!("  … and {} more", report.rejected.len() - 10);
        }
    }
}
