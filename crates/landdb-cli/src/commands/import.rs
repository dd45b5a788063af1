//! `landdb import`: an upload into the store as one atomic batch, with a report.

use std::path::PathBuf;

use landdb_ingest::import::{self, Mode};

#[derive(Debug, clap::Args)]
#[group(id = "import_args")]
pub struct Args {
    #[command(flatten)]
    pub read: super::validate::Args,
    /// `append` adds new parcels; `replace-commune` makes the upload the whole truth for its
    /// communes (changed parcels get a new version, absent ones are retired).
    #[arg(long, value_enum, default_value_t = Mode::Append)]
    pub mode: Mode,
}

pub async fn run(context: &crate::Context, args: &Args) -> anyhow::Result<()> {
    let reference = context.reference()?;
    let store = context.store().await?;
    let options = super::validate::options(&reference, &args.read)?;
    let bar = super::validate::progress_bar();
    let paths: Vec<PathBuf> = args.read.paths.clone();
    let imported =
        import::import(&store, &paths, &reference, &options, args.mode, &|n| bar.set_position(n as u64)).await;
    bar.finish_and_clear();
    let imported = imported?;
    if imported.already_imported {
        println!(
            "already imported: this content is batch {} (committed {}); nothing changed",
            imported.batch.id,
            imported.batch.committed_at.map_or_else(String::new, |t| t.to_rfc3339())
        );
    } else {
        let c = &imported.changes;
        println!(
            "batch {} committed: {} inserted, {} updated, {} unchanged, {} retired, {} quarantined",
            imported.batch.id, c.inserted, c.updated, c.unchanged, c.retired, c.quarantined
        );
    }
    super::validate::write_report(&imported.report, args.read.report.as_ref())
}
