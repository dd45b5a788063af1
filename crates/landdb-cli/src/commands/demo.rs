//! `landdb demo`: the first thing a newcomer runs. Imports the bundled samples once (a second
//! run finds them already there) and shows the store.

use std::path::PathBuf;

use landdb_ingest::import::{self, Mode};
use landdb_ingest::pipeline::Options;
use landdb_ingest::profiles::FieldMapping;
use landdb_store::ParcelStore;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the samples are.
    #[arg(long, default_value = "data-samples/geojson")]
    pub samples: PathBuf,
    /// Then serve them over HTTP (`landdb serve`), printing the addresses to open.
    #[arg(long)]
    pub serve: bool,
    #[command(flatten)]
    pub server: super::serve::ServerArgs,
}

pub async fn run(context: &crate::Context, args: Args) -> anyhow::Result<()> {
    let reference = context.reference()?;
    let store = context.store().await?;
    if store.count_current().await? == 0 {
        let options = Options { crs_override: None, mapping: FieldMapping::builtin().map_err(anyhow::Error::msg)? };
        let imported = import::import(&store, &[args.samples], &reference, &options, Mode::Append, &|_| {}).await?;
        let (r, c) = (&imported.report, &imported.changes);
        println!(
            "batch {} committed: {} of {} records imported, {} quarantined",
            imported.batch.id, c.inserted, r.input, c.quarantined
        );
    } else {
        println!("samples already loaded");
    }
    super::status::print(context, &store).await?;
    if args.serve {
        super::serve::serve(store, reference, &args.server).await?;
    }
    Ok(())
}
