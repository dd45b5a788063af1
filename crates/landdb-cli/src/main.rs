//! `landdb`: the one binary. Each subcommand lives in `commands/` and only wires the library
//! crates together.

mod checkpoints;
mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use landdb_model::ReferenceData;
use landdb_store::{AnyStore, DatabaseUrl};

/// Imports allocate and free millions of small rings and strings on every core at once; glibc's
/// allocator spent a tenth of an import's time on that (perf), mimalloc a fraction of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The national land database and geospatial query engine for Vietnam.
#[derive(Debug, Parser)]
#[command(name = "landdb", version, about, propagate_version = true)]
struct Cli {
    /// The store: `postgres://…` for PostGIS, or a file path / `sqlite://FILE` for the embedded
    /// store. Without it, the embedded store `landdb.sqlite` in the current directory.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database: Option<String>,

    /// A directory whose reference files (provinces.csv, communes.csv, vn2000-zones.csv,
    /// land-use-codes.csv, …) replace the built-in ones.
    #[arg(long, global = true, env = "LANDDB_REFERENCE_DIR")]
    reference_dir: Option<PathBuf>,

    /// The data keyring: the keys right holders' names and citizen IDs are sealed under, kept
    /// outside the database. Without it, the user's `~/.local/share/landdb/data.keys`, made on
    /// first use.
    #[arg(long, global = true, env = "LANDDB_DATA_KEYS")]
    data_keys: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Import provincial files into the store as one atomic batch: everything validate does, then
    /// the checks against the store, the quarantine of rejected records, and the load.
    Import(commands::import::Args),
    /// Read, check and normalise provincial files without touching any store (a dry run of
    /// import): prints the verdicts and reasons, writes the full report with --report.
    Validate(commands::validate::Args),
    /// Show the store: kind, current parcels, change-feed head, schema.
    Status,
    /// Bring the store's schema up to date (PostGIS: against the primary; a standby is refused)
    /// and seal what needs sealing; `serve` and `import` do it too on a primary, so this is for
    /// deployments that migrate before starting servers.
    Migrate,
    /// Load the bundled data samples into the store (the embedded one unless --database says
    /// otherwise) and show what is there.
    Demo(commands::demo::Args),
    /// Check the reference data (built in, or from --reference-dir) and print what it holds.
    Reference,
    /// Write parcels (all, a commune's, or a box's) as one GeoJSON file, streamed.
    Export(commands::export::Args),
    /// Share the parcels over HTTP: OGC API – Features and parcel lookups, answered from the
    /// in-memory engine, which follows the store's change feed.
    Serve(commands::serve::ServerArgs),
    /// Keep a copy of the parcels an agency may see, from a landdb server's change feed, in a
    /// GeoPackage or a PostGIS database: resumable after a kill at any point, --once for cron.
    Sync(commands::sync::Args),
    /// Agencies and their policies (area, personal data, operations, limits, purpose).
    #[command(subcommand)]
    Agency(commands::access::AgencyCommand),
    /// API keys: create (printed once), rotate, revoke, list; and the data key that seals right
    /// holders (`keys rotate-data-key`).
    #[command(subcommand, visible_alias = "keys")]
    Key(commands::access::KeyCommand),
    /// The audit log: verify its hash chain (and signed checkpoints), show who accessed what,
    /// sign checkpoints of its head.
    #[command(subcommand)]
    Audit(commands::access::AuditCommand),
    /// The import worker `serve` starts for each upload (an assignment on standard input,
    /// reports on standard output); not for people.
    #[command(hide = true)]
    JobRun,
}

/// What every subcommand gets: the global options, resolved.
pub struct Context {
    database: Option<String>,
    reference_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Context {
    /// Without the database URL, which may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("reference_dir", &self.reference_dir).finish_non_exhaustive()
    }
}

impl Context {
    pub fn reference(&self) -> anyhow::Result<ReferenceData> {
        Ok(match &self.reference_dir {
            Some(dir) => ReferenceData::with_overrides(dir)?,
            None => ReferenceData::embedded()?,
        })
    }

    pub fn reference_dir(&self) -> Option<&std::path::Path> {
        self.reference_dir.as_deref()
    }

    pub fn database_url(&self) -> anyhow::Result<DatabaseUrl> {
        Ok(DatabaseUrl::or_default(self.database.as_deref())?)
    }

    pub async fn store(&self) -> anyhow::Result<AnyStore> {
        let url = self.database_url()?;
        tracing::info!(store = %url, "opening store");
        Ok(AnyStore::open(&url).await?)
    }
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LANDDB_LOG")
        .unwrap_or_else(|_| "warn,sqlx::query=error,landdb=info".into());
    // One JSON object a line for log collectors (LANDDB_LOG_FORMAT=json), text otherwise.
    if std::env::var("LANDDB_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let cli = Cli::parse();
    if let Some(keyring) = &cli.data_keys {
        landdb_store::data_keys::use_keyring(keyring.clone());
    }
    if matches!(cli.command, Command::JobRun) {
        // Before any runtime or store: the worker sets its limits on itself first.
        return landdb_api::jobs::worker::main();
    }
    let context = Context { database: cli.database, reference_dir: cli.reference_dir };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("landdb: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Import(args) => commands::import::run(&context, &args).await,
            Command::Validate(args) => commands::validate::run(&context, &args),
            Command::Status => commands::status::run(&context).await,
            Command::Migrate => commands::status::migrate(&context).await,
            Command::Demo(args) => commands::demo::run(&context, args).await,
            Command::Reference => commands::reference::run(&context),
            Command::Export(args) => commands::export::run(&context, &args).await,
            Command::Serve(args) => commands::serve::run(&context, &args).await,
            Command::Sync(args) => commands::sync::run(&args).await,
            Command::Agency(c) => commands::access::agency(&context, c).await,
            Command::Key(c) => commands::access::key(&context, c).await,
            Command::Audit(c) => commands::access::audit(&context, c).await,
            Command::JobRun => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("landdb: {e:#}");
            ExitCode::FAILURE
        }
    }
}
