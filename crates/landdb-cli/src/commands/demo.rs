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
        let options =
            Options { crs_override: None, mapping: FieldMapping::builtin().map_err(anyhow::Error::msg)?, area: None };
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
        let key = demo_key(&store, &reference).await?;
        super::serve::serve(context, store, reference, &args.server, Some(key)).await?;
    }
    Ok(())
}

/// A key of the `demo` agency (the national operator's role over the whole country, personal
/// data included: the samples are synthetic), made afresh each run.
async fn demo_key(store: &landdb_store::AnyStore, reference: &landdb_model::ReferenceData) -> anyhow::Result<String> {
    use landdb_access::{Agency, Area, Limits, Policy, Role};
    let agency = Agency {
        name: "demo".to_owned(),
        title: "Demo (landdb demo --serve)".to_owned(),
        role: Role::Operator,
        policy: Policy {
            area: Area::Nation,
            personal_data: true,
            operations: Role::Operator.default_operations(),
            limits: Limits::default(),
            valid_from: None,
            valid_until: None,
            purpose: "demonstration on sample data".to_owned(),
        },
        created_at: chrono::Utc::now(),
    };
    landdb_api::admin::save_agency(store, reference, &agency).await?;
    Ok(landdb_api::admin::new_key(store, &agency.name, None).await?.token)
}
