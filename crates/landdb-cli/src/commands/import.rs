//! `landdb import`: an upload into the store as one atomic batch, with a report. Files of several
//! provinces (a national load) are one batch a province, several importing at once, each over a
//! connection of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use landdb_ingest::import::{self, Delivery, Imported, Mode};

#[derive(Debug, clap::Args)]
#[group(id = "import_args")]
pub struct Args {
    #[command(flatten)]
    pub read: super::validate::Args,
    /// `append` adds new parcels; `replace-commune` makes the upload the whole truth for its
    /// communes (changed parcels get a new version, absent ones are retired).
    #[arg(long, value_enum, default_value_t = Mode::Append)]
    pub mode: Mode,
    /// Files of several provinces: how many provinces import at once, each its own batch over a
    /// connection of its own (the machine's cores when absent).
    #[arg(long)]
    pub connections: Option<usize>,
}

pub async fn run(context: &crate::Context, args: &Args) -> anyhow::Result<()> {
    let reference = Arc::new(context.reference()?);
    let store = context.store().await?;
    let options = super::validate::options(&reference, &args.read)?;
    let mut deliveries = import::deliveries(&args.read.paths, &reference, &options);
    if deliveries.len() > 1 {
        let connections =
            args.connections.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())).max(1);
        return national(store, deliveries, reference, options, args, connections).await;
    }
    let paths = deliveries.pop().map_or_else(Vec::new, |d| d.paths);
    let bar = super::validate::progress_bar();
    let imported =
        import::import(&store, &paths, &reference, &options, args.mode, &|n| bar.set_position(n as u64)).await;
    bar.finish_and_clear();
    let imported = imported?;
    println!("{}", outcome(&imported));
    super::validate::write_report(&imported.report, args.read.report.as_ref())
}

/// What a batch did, in a line.
fn outcome(imported: &Imported) -> String {
    if imported.already_imported {
        format!(
            "already imported: this content is batch {} (committed {}); nothing changed",
            imported.batch.id,
            imported.batch.committed_at.map_or_else(String::new, |t| t.to_rfc3339())
        )
    } else {
        let c = &imported.changes;
        format!(
            "batch {} committed: {} inserted, {} updated, {} unchanged, {} retired, {} quarantined",
            imported.batch.id, c.inserted, c.updated, c.unchanged, c.retired, c.quarantined
        )
    }
}

fn named(delivery: &Delivery) -> String {
    let files = delivery.paths.len();
    let files = format!("{files} file{}", if files == 1 { "" } else { "s" });
    match &delivery.province {
        Some(p) => format!("province {p} ({files})"),
        None => format!("no known province ({files})"),
    }
}

/// A national load: every province's delivery its own batch, `connections` at once. A province
/// that fails leaves the store without it and the others go on; the same command again imports
/// only what is missing (a committed delivery is found by its content and left alone).
async fn national(
    store: landdb_store::AnyStore,
    deliveries: Vec<Delivery>,
    reference: Arc<landdb_model::ReferenceData>,
    options: landdb_ingest::pipeline::Options,
    args: &Args,
    connections: usize,
) -> anyhow::Result<()> {
    println!("{} provinces' deliveries, {connections} at a time", deliveries.len());
    let bar = Arc::new(super::validate::progress_bar());
    let permits = Arc::new(tokio::sync::Semaphore::new(connections));
    let options = Arc::new(options);
    let mut running = tokio::task::JoinSet::new();
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let (store, reference, options, permits, bar) =
            (store.clone(), Arc::clone(&reference), Arc::clone(&options), Arc::clone(&permits), Arc::clone(&bar));
        let mode = args.mode;
        running.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let read = AtomicUsize::new(0);
            let progress = |n: usize| bar.inc((n - read.swap(n, Ordering::Relaxed).min(n)) as u64);
            let imported = import::import(&store, &delivery.paths, &reference, &options, mode, &progress).await;
            let line = match &imported {
                Ok(done) => format!("{}: {}", named(&delivery), outcome(done)),
                Err(e) => format!("{}: FAILED, nothing of it imported: {e}", named(&delivery)),
            };
            bar.suspend(|| println!("{line}"));
            (i, delivery, imported)
        });
    }
    let mut results = running.join_all().await;
    bar.finish_and_clear();
    results.sort_by_key(|(i, _, _)| *i);
    let mut failed = 0;
    let mut reports = Vec::new();
    for (_, delivery, imported) in &results {
        match imported {
            Ok(done) => {
                print!("{}: {}", named(delivery), done.report.summary());
                reports.push(serde_json::json!({
                    "province": delivery.province, "paths": delivery.paths, "outcome": outcome(done),
                    "changes": done.changes, "report": done.report,
                }));
            }
            Err(e) => {
                failed += 1;
                reports.push(serde_json::json!({
                    "province": delivery.province, "paths": delivery.paths, "error": e.to_string(),
                }));
            }
        }
    }
    if let Some(path) = &args.read.report {
        let json = serde_json::to_string_pretty(&serde_json::json!({ "deliveries": reports }))?;
        std::fs::write(path, json).with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    if failed > 0 {
        let failed_names: Vec<String> =
            results.iter().filter(|(_, _, r)| r.is_err()).map(|(_, d, _)| named(d)).collect();
        anyhow::bail!(
            "{failed} of {} deliveries failed ({}) and are not in the store; the others are committed. \
             Run the same command again once corrected: what is committed is recognised and left as it is",
            results.len(),
            failed_names.join(", ")
        );
    }
    Ok(())
}
