//! `landdb serve`: the sharing API. Loads the engine (from a snapshot file when there is one),
//! follows the change feed, answers HTTP until interrupted, then writes the snapshot. With a
//! checkpoint key, it also signs the audit head into a checkpoint file whenever it has moved
//! (every `--checkpoint-every` seconds, and once more at shutdown).

use std::path::PathBuf;
use std::sync::Arc;

use landdb_api::AppState;
use landdb_engine::Engine;
use landdb_model::ReferenceData;
use landdb_store::AnyStore;

#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Read replicas of the PostGIS primary (`--database`): streaming standbys made with
    /// `pg_basebackup -R` (repeat the flag, or separate with commas). The engine loads and follows
    /// the change feed from the first, and parcels and history are read from it; reads move to
    /// the next that has replayed as far when it stops answering, to the primary when none has,
    /// and back when one has. Everything written (audit, quotas, keys, jobs) goes to the primary,
    /// and the primary's NOTIFY, then the standby's replay, wakes the engine.
    #[arg(long, env = "LANDDB_READ_DATABASE", hide_env_values = true, value_delimiter = ',')]
    pub read_database: Vec<String>,
    /// Where audit entries wait while the primary does not take them (fsynced before the
    /// answers they record leave; drained into the chain, in order, when it answers again).
    /// Without it, `~/.local/state/landdb/audit-spool-PORT.jsonl` (one server a port).
    #[arg(long, env = "LANDDB_AUDIT_SPOOL")]
    pub audit_spool: Option<PathBuf>,
    /// Where to listen (host:port).
    #[arg(long, default_value = "127.0.0.1:8080", env = "LANDDB_LISTEN")]
    pub listen: String,
    /// The address clients reach the server at, for the links in answers (behind a proxy);
    /// without it, links follow the request's Host header.
    #[arg(long, env = "LANDDB_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// A snapshot file: the engine starts from it when it exists (then catches up from the
    /// change feed), and it is written again on shutdown.
    #[arg(long, env = "LANDDB_SNAPSHOT")]
    pub snapshot: Option<PathBuf>,
    /// The secret key (`landdb audit keygen`) that signs checkpoints of the audit head; keep it
    /// where the database's administrators cannot read it.
    #[arg(long, env = "LANDDB_CHECKPOINT_KEY", requires = "checkpoints")]
    pub checkpoint_key: Option<PathBuf>,
    /// The append-only file the checkpoints go to (what `landdb audit verify --checkpoints`
    /// reads).
    #[arg(long, env = "LANDDB_CHECKPOINTS", requires = "checkpoint_key")]
    pub checkpoints: Option<PathBuf>,
    /// Seconds between checkpoints (only when the head has moved).
    #[arg(long, default_value_t = 60, env = "LANDDB_CHECKPOINT_EVERY")]
    pub checkpoint_every: u64,
    /// Seconds the engine may stay behind the store's change feed before `/ready` says 503.
    #[arg(long, default_value_t = 30, env = "LANDDB_MAX_FEED_LAG_SECONDS")]
    pub max_feed_lag_seconds: u64,
    /// Hosts (host or host:port, comma-separated) webhook callbacks may point at; none unless
    /// given, so that no subscription can make the server call into its own network.
    #[arg(long, env = "LANDDB_WEBHOOK_HOSTS", value_delimiter = ',')]
    pub webhook_hosts: Vec<String>,
    /// Serve HTTPS with this certificate chain (PEM, the server's first); read again when it
    /// changes, without a restart.
    #[arg(long, env = "LANDDB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "LANDDB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Ask clients for a certificate issued by this CA (PEM): one registered with `landdb key
    /// add-cert` identifies its agency without a key (mutual TLS).
    #[arg(long, env = "LANDDB_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Take OAuth2 bearer tokens (JWT) of this identity provider (its `iss`), beside keys.
    #[arg(long, env = "LANDDB_OAUTH_ISSUER", requires_all = ["oauth_audience", "oauth_jwks"])]
    pub oauth_issuer: Option<String>,
    /// The audience (`aud`) the tokens must be for.
    #[arg(long, env = "LANDDB_OAUTH_AUDIENCE", requires = "oauth_issuer")]
    pub oauth_audience: Option<String>,
    /// The provider's signing keys: a JWKS file, or its https:// address (fetched again when a
    /// token names a key it does not hold).
    #[arg(long, env = "LANDDB_OAUTH_JWKS", requires = "oauth_issuer")]
    pub oauth_jwks: Option<String>,
    /// The claim naming the client (`landdb key add-oauth` registers it for an agency).
    #[arg(long, env = "LANDDB_OAUTH_CLIENT_CLAIM", default_value = "client_id")]
    pub oauth_client_claim: String,
    /// Where security events go (failed authentication, revoked or expired credentials,
    /// refusals, limits, tamper, anomalies): a JSON-lines file, or syslog://HOST:PORT (RFC 5424
    /// over UDP).
    #[arg(long, env = "LANDDB_SECURITY_EVENTS")]
    pub security_events: Option<String>,
    #[command(flatten)]
    pub jobs: JobArgs,
}

impl ServerArgs {
    /// The OAuth2 settings, when a provider is given.
    fn oauth(&self) -> anyhow::Result<Option<landdb_api::oauth::OAuthSettings>> {
        let (Some(issuer), Some(audience), Some(jwks)) = (&self.oauth_issuer, &self.oauth_audience, &self.oauth_jwks)
        else {
            return Ok(None);
        };
        Ok(Some(landdb_api::oauth::OAuthSettings {
            issuer: issuer.clone(),
            audience: audience.clone(),
            jwks: landdb_api::oauth::Jwks::parse(jwks).map_err(anyhow::Error::msg)?,
            client_claim: self.oauth_client_claim.clone(),
        }))
    }

    /// The TLS files, when HTTPS is asked for.
    fn tls(&self) -> Option<landdb_api::tls::TlsFiles> {
        Some(landdb_api::tls::TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }
}

/// Limits of uploads and of the worker processes that import them.
#[derive(Debug, Clone, clap::Args)]
pub struct JobArgs {
    /// Where upload jobs keep their files (a directory a job, removed when it ends).
    #[arg(long, env = "LANDDB_JOBS_DIR")]
    pub jobs_dir: Option<PathBuf>,
    /// The largest upload, in MiB (refused from its Content-Length, or as soon as it passes).
    #[arg(long, default_value_t = 4096, env = "LANDDB_UPLOAD_MAX_MIB")]
    pub upload_max_mib: u64,
    /// Seconds an upload's body may stall before it is refused (408).
    #[arg(long, default_value_t = 60, env = "LANDDB_UPLOAD_IDLE_SECONDS")]
    pub upload_idle_seconds: u64,
    /// Seconds an upload's body may take to arrive in all (408).
    #[arg(long, default_value_t = 3600, env = "LANDDB_UPLOAD_TOTAL_SECONDS")]
    pub upload_total_seconds: u64,
    /// Uploads an agency may have received, queued or running at once (429 past it).
    #[arg(long, default_value_t = 2, env = "LANDDB_JOBS_PER_AGENCY")]
    pub jobs_per_agency: usize,
    /// Import workers running at once (other jobs wait, queued).
    #[arg(long, default_value_t = 2, env = "LANDDB_JOB_WORKERS")]
    pub job_workers: usize,
    /// A worker's address space, in MiB.
    #[arg(long, default_value_t = 4096, env = "LANDDB_JOB_MEMORY_MIB")]
    pub job_memory_mib: u64,
    /// A worker's CPU time, in seconds.
    #[arg(long, default_value_t = 3600, env = "LANDDB_JOB_CPU_SECONDS")]
    pub job_cpu_seconds: u64,
    /// The largest file a worker may write, in MiB (extracted archives; an embedded store's file
    /// too, so keep it above the store's size).
    #[arg(long, default_value_t = 16384, env = "LANDDB_JOB_FILE_MIB")]
    pub job_file_mib: u64,
    /// Files a worker may have open at once.
    #[arg(long, default_value_t = 1024, env = "LANDDB_JOB_OPEN_FILES")]
    pub job_open_files: u64,
    /// Seconds a worker may run, by the clock.
    #[arg(long, default_value_t = 7200, env = "LANDDB_JOB_WALL_SECONDS")]
    pub job_wall_seconds: u64,
}

impl JobArgs {
    pub fn limits(&self) -> landdb_api::jobs::JobLimits {
        use std::time::Duration;
        landdb_api::jobs::JobLimits {
            upload: landdb_api::upload::UploadLimits {
                max_bytes: self.upload_max_mib << 20,
                idle: Duration::from_secs(self.upload_idle_seconds.max(1)),
                total: Duration::from_secs(self.upload_total_seconds.max(1)),
            },
            per_agency: self.jobs_per_agency.max(1),
            workers: self.job_workers.max(1),
            worker: landdb_api::jobs::worker::WorkerLimits {
                memory_bytes: self.job_memory_mib << 20,
                cpu_seconds: self.job_cpu_seconds.max(1),
                file_bytes: self.job_file_mib << 20,
                open_files: self.job_open_files.max(16),
                wall_seconds: self.job_wall_seconds.max(1),
            },
        }
    }
}

pub async fn run(context: &crate::Context, args: &ServerArgs) -> anyhow::Result<()> {
    let store = if args.read_database.is_empty() {
        context.store().await?
    } else {
        let url = context.database_url()?;
        let reads =
            args.read_database.iter().map(|r| landdb_store::DatabaseUrl::parse(r)).collect::<Result<Vec<_>, _>>()?;
        let shown: Vec<String> = reads.iter().map(ToString::to_string).collect();
        tracing::info!(store = %url, replicas = %shown.join(", "), "opening store, reading from the replicas");
        AnyStore::open_with_replicas(&url, &reads).await?
    };
    serve(context, store, context.reference()?, args, None).await
}

/// Serves until interrupted; `tour` (from `landdb demo --serve`) is printed with the addresses,
/// and the map's address carries its key.
pub async fn serve(
    context: &crate::Context,
    store: AnyStore,
    reference: ReferenceData,
    args: &ServerArgs,
    tour: Option<&super::demo::Tour>,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    // The signer first: a key or checkpoint file that does not hold stops the server before it
    // answers anything it could not witness.
    let signer = match (&args.checkpoint_key, &args.checkpoints) {
        (Some(key), Some(file)) => {
            Some(Arc::new(tokio::sync::Mutex::new(crate::checkpoints::Signer::open(key, file)?)))
        }
        _ => None,
    };
    let engine = match &args.snapshot {
        Some(path) if path.exists() => match Engine::open(&store, path).await {
            Ok(engine) => engine,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start from the snapshot; loading from the store");
                Engine::load(&store).await?
            }
        },
        _ => Engine::load(&store).await?,
    };
    let engine = Arc::new(engine);
    let view = engine.snapshot();
    tracing::info!(
        parcels = view.len(),
        position = view.position().0,
        seconds = started.elapsed().as_secs_f64(),
        "engine loaded"
    );
    drop(view);
    let follower = tokio::spawn(landdb_api::follow_feed(Arc::clone(&engine), store.clone()));
    let spool_path = args.audit_spool.clone().unwrap_or_else(|| default_spool(&args.listen));
    let spool = landdb_api::spool::Spool::open(&spool_path)
        .map_err(|e| anyhow::anyhow!("cannot open the audit spool {}: {e}", spool_path.display()))?;
    if spool.depth() > 0 {
        tracing::warn!(spool = %spool_path.display(), entries = spool.depth(), "audit entries an earlier run left: drained into the chain first");
    }
    let gate = landdb_api::access::Gate::load(&store, &reference, spool).await?;
    let jobs_dir = args.jobs.jobs_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("landdb-jobs"));
    let jobs = landdb_api::jobs::Jobs::new(
        &jobs_dir,
        landdb_api::jobs::worker::WorkerCommand::this_executable()?,
        context.reference_dir().map(std::path::Path::to_path_buf),
        args.jobs.limits(),
    )
    .map_err(|e| anyhow::anyhow!("cannot prepare the jobs directory {}: {e}", jobs_dir.display()))?;
    let state = Arc::new(AppState {
        sources: landdb_api::scope::Sources::new(Arc::clone(&engine), store.clone())
            .taking_uploads(context.database_url()?),
        reference: Arc::new(reference),
        public_url: args.public_url.clone(),
        jobs,
        metrics: landdb_api::metrics::Metrics::default(),
        gate,
        health: landdb_api::health::Health::new(std::time::Duration::from_secs(args.max_feed_lag_seconds)),
        webhooks: landdb_api::webhooks::Webhooks::new(args.webhook_hosts.clone()),
        security: match &args.security_events {
            Some(sink) => {
                let sink = landdb_api::security::Sink::parse(sink).map_err(anyhow::Error::msg)?;
                landdb_api::security::SecurityEvents::to(sink).await.map_err(anyhow::Error::msg)?
            }
            None => landdb_api::security::SecurityEvents::off(),
        },
        oauth: match args.oauth()? {
            Some(settings) => Some(landdb_api::oauth::OAuth::new(settings).await.map_err(anyhow::Error::msg)?),
            None => None,
        },
    });
    let deliveries = tokio::spawn(landdb_api::webhooks::deliver::run(Arc::clone(&state)));
    let watcher = tokio::spawn(landdb_api::health::watch(Arc::clone(&state)));
    let access_follower = tokio::spawn(landdb_api::access::follow_access(Arc::clone(&state)));
    let every = std::time::Duration::from_secs(args.checkpoint_every.max(1));
    let checkpointer = signer.clone().map(|signer| tokio::spawn(checkpoint_every(signer, store.clone(), every)));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let address = listener.local_addr()?;
    let tls = args.tls();
    // The TLS files are read now, so that a bad one stops the start with its reason.
    if let Some(files) = &tls {
        landdb_api::tls::server_config(files)?;
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base = args.public_url.clone().unwrap_or_else(|| format!("{scheme}://{address}"));
    println!("landdb is serving {} parcels", engine.snapshot().len());
    println!("  landing page:     {base}/");
    let fragment = tour.map(|t| format!("#key={}", t.key)).unwrap_or_default();
    println!("  parcel map:       {base}/map{fragment}");
    println!("  upload page:      {base}/upload");
    println!("  parcels:          {base}/collections/parcels/items");
    println!("  API definition:   {base}/api");
    match tour {
        Some(tour) => tour.print(&base),
        None => println!("every request but the landing page needs a key: `landdb key create <agency>` makes one"),
    }
    println!("stop with Ctrl-C");
    landdb_api::tls::serve(listener, landdb_api::router(Arc::clone(&state)), tls, shutdown_signal()).await?;
    follower.abort();
    access_follower.abort();
    watcher.abort();
    deliveries.abort();
    // Every audit entry of the requests answered is written before the process ends, and
    // witnessed by a last checkpoint.
    state.gate.audit.flush().await;
    state.gate.leave().await;
    // What this process leased of agencies' quotas and did not send goes back to the store.
    state.gate.quota.give_back().await;
    if let Some(task) = checkpointer {
        task.abort();
    }
    if let Some(signer) = &signer {
        sign(&mut *signer.lock().await, &store).await;
    }
    if let Some(path) = &args.snapshot {
        // A spinner on a terminal (indicatif draws nothing otherwise), then one line either way.
        let started = std::time::Instant::now();
        let bar = super::spinner("writing the snapshot", "{spinner} {msg}: {bytes} ({binary_bytes_per_sec})");
        let size = engine.save_reporting(path, &|n| bar.set_position(n))?;
        bar.finish_and_clear();
        println!(
            "snapshot written to {} ({} parcels, {:.1} MB in {:.1} s)",
            path.display(),
            engine.snapshot().len(),
            size as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Signs the audit head every `every` while it moves.
async fn checkpoint_every(
    signer: Arc<tokio::sync::Mutex<crate::checkpoints::Signer>>,
    store: AnyStore,
    every: std::time::Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sign(&mut *signer.lock().await, &store).await;
    }
}

async fn sign(signer: &mut crate::checkpoints::Signer, store: &AnyStore) {
    match signer.checkpoint(store, true).await {
        Ok(Some(c)) => tracing::info!(checkpoint = %c, "audit head signed"),
        Ok(None) => {}
        // Loud, and no checkpoint: the chain behind the last one no longer holds.
        Err(e) => tracing::error!(error = %format!("{e:#}"), "audit checkpoint refused"),
    }
}

/// Ctrl-C or SIGTERM (what service managers send).
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

/// `$XDG_STATE_HOME/landdb/audit-spool-PORT.jsonl` (`~/.local/state/…`): one server a port on a
/// machine, and the same file again after a restart, so that what it held is drained.
fn default_spool(listen: &str) -> PathBuf {
    let port = listen.rsplit(':').next().unwrap_or("0").to_owned();
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    state.join("landdb").join(format!("audit-spool-{port}.jsonl"))
}
