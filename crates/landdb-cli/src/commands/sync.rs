//! `landdb sync`: keep a copy of what an agency may see, following a landdb server's change feed
//! into a GeoPackage, a PostGIS database or landdb's embedded store (see `landdb-sync`).

use anyhow::Result;
use landdb_sync::{Copy, Options, Source, Summary};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server, as http://host:port.
    pub url: String,
    /// The agency's API key.
    #[arg(long, env = "LANDDB_KEY", hide_env_values = true)]
    pub key: String,
    /// Where the copy is kept: a GeoPackage (a path ending in .gpkg, made if absent), a
    /// PostGIS database (postgres://…), or landdb's embedded store (sqlite:FILE or a path ending
    /// in .sqlite; `landdb serve --database FILE` then serves the copy).
    #[arg(long)]
    pub into: String,
    /// The copy's table in a PostGIS database.
    #[arg(long, default_value = "parcels")]
    pub table: String,
    /// A CA (PEM) to trust besides the system's, for an https:// server whose certificate a
    /// private CA issued.
    #[arg(long)]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Stop once the copy has caught up (for cron); without it, follow live.
    #[arg(long)]
    pub once: bool,
    /// Events a page.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
}

pub async fn run(args: &Args) -> Result<()> {
    let copy = Copy::open(&args.into, &args.table).await?;
    let source = Source { url: args.url.clone(), key: args.key.clone(), ca_cert: args.ca_cert.clone() };
    let options = Options { once: args.once, limit: args.limit, ..Options::default() };
    let bar = super::spinner("following", "{spinner} {msg} {elapsed}");
    let started = std::time::Instant::now();
    let show = |s: &Summary| {
        bar.set_message(describe(s));
        // Once caught up, each page that changed something gets a line of its own.
        let e = &s.last;
        if s.caught_up && e.changes() > 0 {
            let line = format!(
                "{} {} created, {} updated, {} entered, {} retired, {} left",
                chrono::Local::now().format("%H:%M:%S"),
                e.created,
                e.updated,
                e.entered,
                e.retired,
                e.left
            );
            if bar.is_hidden() { println!("{line}") } else { bar.println(line) }
        }
    };
    let summary = landdb_sync::sync(&source, &copy, options, &show).await;
    bar.finish_and_clear();
    let summary = summary?;
    let held = copy.count().await?;
    println!(
        "{}: {} in {:.1} s; the copy holds {held} parcels",
        args.into,
        describe(&summary),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What a run has done so far, in one line.
fn describe(s: &Summary) -> String {
    let e = &s.events;
    format!(
        "{} pages: {} parcels from the snapshot, {} created, {} updated, {} entered, {} retired, {} left",
        s.pages, e.snapshot, e.created, e.updated, e.entered, e.retired, e.left
    )
}
