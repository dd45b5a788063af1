//! `landdb demo`: the first thing a newcomer runs. Loads the bundled samples once (a second run
//! finds them already there) and shows the store.

use std::path::PathBuf;

use landdb_store::ParcelStore;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the samples are.
    #[arg(long, default_value = "data-samples/geojson")]
    pub samples: PathBuf,
}

pub async fn run(context: &crate::Context, args: Args) -> anyhow::Result<()> {
    let reference = context.reference()?;
    let store = context.store().await?;
    if store.count_current().await? == 0 {
        let files = super::load::expand(std::slice::from_ref(&args.samples))?;
        let report = landdb_ingest::load::load_files(&store, &reference, &files).await?;
        super::load::print_report(&report);
    } else {
        println!("samples already loaded");
    }
    super::status::print(context, &store).await
}
