//! `landdb demo`: the first thing a newcomer runs. Imports the bundled samples once (a second
//! run finds them already there), then delivers one of their communes again with one parcel
//! changed, so that there is a history to show; shows the store, and ends with what to try next:
//! commands, or with `--serve` lookups that find a real parcel and `curl` lines that send the key.

mod revision;
mod showcase;

use std::path::{Path, PathBuf};

use landdb_ingest::import::{self, Mode};
use landdb_ingest::pipeline::Options;
use landdb_ingest::profiles::FieldMapping;
use landdb_store::{DatabaseUrl, ParcelStore};

use revision::Revision;
use showcase::Showcase;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the samples are.
    #[arg(long, default_value = DEFAULT_SAMPLES)]
    pub samples: PathBuf,
    /// Then serve them over HTTP (`landdb serve`), printing the addresses to open.
    #[arg(long)]
    pub serve: bool,
    #[command(flatten)]
    pub server: super::serve::ServerArgs,
}

const DEFAULT_SAMPLES: &str = "data-samples/geojson";

pub async fn run(context: &crate::Context, args: Args) -> anyhow::Result<()> {
    let reference = context.reference()?;
    let store = context.store().await?;
    let options =
        Options { crs_override: None, mapping: FieldMapping::builtin().map_err(anyhow::Error::msg)?, area: None };
    if store.count_current().await? == 0 {
        let imported =
            import::import(&store, std::slice::from_ref(&args.samples), &reference, &options, Mode::Append, &|_| {})
                .await?;
        let (r, c) = (&imported.report, &imported.changes);
        println!(
            "batch {} committed: {} of {} records imported, {} quarantined",
            imported.batch.id, c.inserted, r.input, c.quarantined
        );
    } else {
        println!("samples already loaded");
    }
    let revision = if revision::samples_loaded(&store, &args.samples).await? {
        Revision::prepare(&args.samples, &options)?
    } else {
        None
    };
    if let Some(revision) = &revision {
        let imported = revision.import(&store, &reference, &options).await?;
        if !imported.already_imported {
            let c = &imported.changes;
            let (old, new) = &revision.certificate;
            println!(
                "batch {} committed: {}, replace-commune (certificate {old} reissued as {new}): \
                 {} updated, {} unchanged, {} retired",
                imported.batch.id,
                revision.name(),
                c.updated,
                c.unchanged,
                c.retired
            );
        }
    }
    super::status::print(context, &store).await?;
    let showcase = Showcase::find(&store, &reference, revision.as_ref().map(|r| r.inside)).await?;
    drop(revision);
    if args.serve {
        let tour = Tour { key: demo_key(&store, &reference).await?, showcase };
        super::serve::serve(context, store, reference, &args.server, Some(&tour)).await?;
    } else {
        print_commands(context, &args, showcase.as_ref())?;
    }
    Ok(())
}

/// What `landdb demo --serve` shows once it listens: the demo key, the lookups of the showcase
/// parcel, and `curl` lines to paste.
#[derive(Debug)]
pub struct Tour {
    pub key: String,
    showcase: Option<Showcase>,
}

impl Tour {
    /// The lines printed after the server's own addresses, for the server at `base`.
    pub fn print(&self, base: &str) {
        let lookups = self.showcase.as_ref().map(Showcase::lookups).unwrap_or_default();
        if let Some(showcase) = &self.showcase {
            let changed = if showcase.with_history.is_some() { ", which the demo's second import changed" } else { "" };
            println!("parcel {}{changed}:", showcase.key);
            for lookup in &lookups {
                println!("  {:<18}{base}{}", format!("{}:", lookup.what), lookup.path);
            }
        }
        println!("every request but the landing page needs a key (Authorization: Bearer <key>)");
        println!("  demo key:         {}", self.key);
        let curl = format!("curl -H {}", shell_word(&format!("Authorization: Bearer {}", self.key)));
        println!("try this:");
        let mut tries: Vec<String> = lookups
            .iter()
            .filter(|lookup| lookup.to_try)
            .map(|lookup| format!("{curl} {}", shell_word(&format!("{base}{}", lookup.path))))
            .collect();
        if tries.is_empty() {
            tries.push(format!("{curl} {}", shell_word(&format!("{base}/collections/parcels/items?limit=2"))));
        }
        if let Some(showcase) = &self.showcase {
            let commune = &showcase.key.commune;
            let export = format!("{base}/collections/parcels/export?f=geojson&commune={commune}");
            tries.push(format!("{curl} -o {commune}.geojson {}", shell_word(&export)));
        }
        for line in tries {
            println!("  {line}");
        }
    }
}

/// The end of `landdb demo` without `--serve`: commands to paste, with this run's store.
fn print_commands(context: &crate::Context, args: &Args, showcase: Option<&Showcase>) -> anyhow::Result<()> {
    let landdb = landdb_command(context)?;
    let samples = if args.samples == Path::new(DEFAULT_SAMPLES) {
        String::new()
    } else {
        format!(" --samples {}", shell_word(&args.samples.display().to_string()))
    };
    println!("try this:");
    println!("  {landdb} demo --serve{samples}   # the map, the API, and lookups to open");
    if let Some(showcase) = showcase {
        let commune = &showcase.key.commune;
        println!("  {landdb} export --commune {commune} --out {commune}.gpkg   # a commune as a GeoPackage");
    }
    let legacy = args.samples.parent().map(|p| p.join("dirty-tcvn3")).filter(|p| p.is_dir());
    if let Some(legacy) = legacy {
        println!(
            "  {landdb} validate {}   # an old Shapefile: TCVN3 text, no .prj",
            shell_word(&legacy.display().to_string())
        );
    }
    Ok(())
}

/// How to run this `landdb` from a shell, with the store and reference data of this run: `landdb`
/// if it is the one on the PATH, else its full path. A database password is never printed.
fn landdb_command(context: &crate::Context) -> anyhow::Result<String> {
    let exe = std::env::current_exe().ok();
    let on_path = |exe: &Path| {
        let same = |candidate: PathBuf| candidate.canonicalize().ok() == exe.canonicalize().ok();
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| same(dir.join("landdb"))))
    };
    let mut command = match exe {
        Some(exe) if !on_path(&exe) => shell_word(&exe.display().to_string()),
        _ => "landdb".to_owned(),
    };
    if context.database.is_some() {
        let url = context.database_url()?;
        let shown = url.to_string();
        let given = match url {
            DatabaseUrl::Sqlite(path) => shell_word(&format!("sqlite://{}", path.display())),
            DatabaseUrl::Postgres(_) if shown.contains(":***@") => "\"$DATABASE_URL\"".to_owned(),
            DatabaseUrl::Postgres(raw) => shell_word(&raw),
        };
        command.push_str(&format!(" --database {given}"));
    }
    if let Some(dir) = context.reference_dir() {
        command.push_str(&format!(" --reference-dir {}", shell_word(&dir.display().to_string())));
    }
    Ok(command)
}

/// `text` as one shell word: as it is when nothing in it is special to a shell, else in single
/// quotes (a URL with `?` or `&` needs them).
fn shell_word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// A key of the `demo` agency (the national operator's role over the whole country, personal
/// data and lookups by citizen included: the samples are synthetic), made afresh each run.
async fn demo_key(store: &landdb_store::AnyStore, reference: &landdb_model::ReferenceData) -> anyhow::Result<String> {
    use landdb_access::{Agency, Area, Limits, Operation, Policy, Role};
    let agency = Agency {
        name: "demo".to_owned(),
        title: "Demo (landdb demo --serve)".to_owned(),
        role: Role::Operator,
        policy: Policy {
            area: Area::Nation,
            personal_data: true,
            // Lookups by citizen too: the samples' holders and their IDs are made up.
            operations: Role::Operator.default_operations().into_iter().chain([Operation::HolderLookup]).collect(),
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
