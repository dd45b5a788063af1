//! `landdb validate`: the import pipeline as a dry run, needing no database.

use std::path::PathBuf;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use landdb_ingest::crs::CrsChoice;
use landdb_ingest::pipeline::{self, ImportReport, Options};
use landdb_ingest::profiles::FieldMapping;
use landdb_model::ReferenceData;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files, directories or zips: Shapefile, GeoPackage, GeoJSON, Esri JSON, DXF, DGN, TAB, KML, CSV.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The coordinate system, whatever the files say: EPSG:n, wgs84, or tm3:<central meridian>.
    #[arg(long)]
    pub crs: Option<String>,
    /// A field mapping file (`canonical,source_names`, as crates/landdb-ingest/profiles/fields.csv).
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Write the full JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// The pipeline options the flags ask for.
pub fn options(reference: &ReferenceData, args: &Args) -> anyhow::Result<Options> {
    let mapping = match &args.mapping {
        Some(path) => FieldMapping::with_file(path),
        None => FieldMapping::builtin(),
    }
    .map_err(anyhow::Error::msg)?;
    let crs_override =
        args.crs.as_deref().map(|c| CrsChoice::parse_override(c, reference)).transpose().map_err(anyhow::Error::msg)?;
    Ok(Options { crs_override, mapping, area: None })
}

/// A spinner counting records read.
pub fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos} records read {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar
}

/// Reads and checks the files with a progress bar.
pub fn read(context: &crate::Context, args: &Args) -> anyhow::Result<ImportReport> {
    let reference = context.reference()?;
    let options = options(&reference, args)?;
    let scratch = std::env::temp_dir().join(format!("landdb-import-{}", std::process::id()));
    let bar = progress_bar();
    let result = pipeline::run(&args.paths, &scratch, &reference, &options, &|n| bar.set_position(n as u64));
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(result?)
}

pub fn write_report(report: &ImportReport, path: Option<&PathBuf>) -> anyhow::Result<()> {
    if let Some(path) = path {
        let json = serde_json::to_string_pretty(report)?;
        std::fs::write(path, json).with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    print!("{}", report.summary());
    Ok(())
}

pub fn run(context: &crate::Context, args: &Args) -> anyhow::Result<()> {
    let report = read(context, args)?;
    write_report(&report, args.report.as_ref())
}
