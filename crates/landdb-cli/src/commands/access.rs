//! `landdb agency …`, `landdb key …`, `landdb audit …`: agencies and their policies, API keys,
//! and the audit log (verification against signed checkpoints, "who received this parcel",
//! checkpoint keys and signing), run by the national operator against the store (running servers
//! pick the changes up within a fraction of a second).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use landdb_access::{Agency, Area, Limits, Operation, Policy, Role};
use landdb_api::admin;
use landdb_model::CitizenId;
use landdb_store::{AccessStore, AnyStore, AskedParcel, AuditQuery, ParcelStore};

#[derive(Debug, clap::Subcommand)]
pub enum AgencyCommand {
    /// Create an agency, or replace the policy of an existing one.
    Add(Box<AgencyArgs>),
    /// List the agencies with their policies and keys.
    List,
}

#[derive(Debug, clap::Args)]
pub struct AgencyArgs {
    /// A short stable name: lower-case letters, digits, hyphens (tax-danang).
    pub name: String,
    /// What the agency is called.
    #[arg(long)]
    pub title: String,
    /// operator, uploader, reader or surveyor.
    #[arg(long)]
    pub role: String,
    /// The area: the whole country.
    #[arg(long, conflicts_with_all = ["provinces", "communes", "polygon"])]
    pub nation: bool,
    /// The area: these provinces (comma-separated codes).
    #[arg(long, value_delimiter = ',')]
    pub provinces: Vec<String>,
    /// The area: these communes (comma-separated codes).
    #[arg(long, value_delimiter = ',')]
    pub communes: Vec<String>,
    /// The area: the parcels meeting this polygon (WKT, longitude/latitude).
    #[arg(long)]
    pub polygon: Option<String>,
    /// The agency sees personal data (addresses, right holders).
    #[arg(long)]
    pub personal_data: bool,
    /// Its operations (comma-separated: lookup, items, export, bulk-export, history, upload);
    /// the role's defaults when absent.
    #[arg(long, value_delimiter = ',')]
    pub operations: Vec<String>,
    #[arg(long)]
    pub requests_per_second: Option<f64>,
    #[arg(long)]
    pub features_per_response: Option<u64>,
    #[arg(long)]
    pub features_per_day: Option<u64>,
    /// When the access starts (RFC 3339).
    #[arg(long)]
    pub valid_from: Option<DateTime<Utc>>,
    /// When the access ends (RFC 3339).
    #[arg(long)]
    pub valid_until: Option<DateTime<Utc>>,
    /// The legal purpose of the access, recorded with every request it makes.
    #[arg(long)]
    pub purpose: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Make a new data key (added to the keyring) and reseal every right holder and quarantined
    /// record under it while the store stays in use; the old key is kept in the keyring (the
    /// audit log's older entries name citizens under it) and marked retired in the database.
    RotateDataKey,
    /// Make a key for an agency. The key is printed once, alone on the last line.
    Create {
        agency: String,
        /// Days until it expires (no expiry when absent).
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
    /// Replace a key: a new one is printed; the old one keeps working for the overlap.
    Rotate {
        id: String,
        #[arg(long, default_value_t = 24)]
        overlap_hours: i64,
    },
    /// Let a client certificate identify an agency over mutual TLS (`serve --tls-client-ca`):
    /// by its public key, kept as a key (`cert-…`), revoked like one.
    AddCert {
        agency: String,
        /// The client's certificate (PEM).
        #[arg(long, conflicts_with = "spki_sha256", required_unless_present = "spki_sha256")]
        cert: Option<std::path::PathBuf>,
        /// Or the SHA-256 of its public key, in hex (`openssl x509 -pubkey -noout | openssl pkey
        /// -pubin -outform der | sha256sum`).
        #[arg(long)]
        spki_sha256: Option<String>,
        /// Days until it expires (no expiry when absent).
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
    /// Let an OAuth2 client of the platform's identity provider identify an agency (`serve
    /// --oauth-issuer`): its tokens are then the agency's; kept as a key (`oauth-…`).
    AddOauth {
        agency: String,
        /// The provider's issuer (`iss`), as `serve --oauth-issuer` names it.
        #[arg(long)]
        issuer: String,
        /// The client's id (the claim `serve --oauth-client-claim` reads).
        #[arg(long)]
        client_id: String,
        /// Days until it expires (no expiry when absent).
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
    /// Revoke a key at once.
    Revoke { id: String },
    /// List keys (never their secrets).
    List { agency: Option<String> },
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Follow the hash chain from the first entry to the real end of the log, checking the
    /// recorded head and every index beside the entries (and, with --checkpoints, the signed
    /// checkpoints): prints the head, or names the first break and fails.
    Verify {
        /// A checkpoint file (`landdb audit checkpoint`, `landdb serve --checkpoints`): every
        /// line's signature, and that the chain still holds each checkpointed entry and reaches
        /// the last one.
        #[arg(long, requires = "public_key")]
        checkpoints: Option<PathBuf>,
        /// The public key the checkpoints are signed with: 64 hex digits, or a file holding
        /// them (what `landdb audit keygen` printed and wrote beside the key).
        #[arg(long, requires = "checkpoints")]
        public_key: Option<String>,
    },
    /// Show entries: an agency's, in a period, or every one that disclosed a parcel.
    Show {
        #[arg(long)]
        agency: Option<String>,
        #[arg(long)]
        since: Option<DateTime<Utc>>,
        #[arg(long)]
        until: Option<DateTime<Utc>>,
        /// A parcel version: every agency that received any version of that parcel (personal
        /// data or not), one line each: time, agency, purpose, endpoint, whether personal data
        /// went with it.
        #[arg(long)]
        parcel: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: i64,
    },
    /// Every disclosure of one citizen's data: lookups by their citizen ID, and every answer
    /// (lookup, export, feed, webhook) that held a parcel version they are a right holder of.
    /// One JSON line each (time, agency, credential, purpose, how, whether personal data went
    /// with it); what a land office gives a citizen who asks who processed their data.
    Subject {
        /// The 12-digit citizen ID.
        citizen_id: String,
        /// From this time (RFC 3339).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// Until this time (RFC 3339).
        #[arg(long)]
        to: Option<DateTime<Utc>>,
    },
    /// Make a checkpoint signing key: the secret key goes to FILE (owner-only; keep it outside
    /// the database server, away from its administrators), the public key to FILE.pub and to
    /// standard output.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign the current head of the chain and append it to a checkpoint file (after following
    /// the chain from the file's last checkpoint to it).
    Checkpoint {
        /// The secret key file (`landdb audit keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The checkpoint file to append to (created when missing); keep it append-only and off
        /// the database server, and copy it elsewhere.
        #[arg(long)]
        to: PathBuf,
    },
}

pub async fn agency(context: &crate::Context, command: AgencyCommand) -> anyhow::Result<()> {
    let store = context.store().await?;
    match command {
        AgencyCommand::Add(a) => {
            let role = Role::parse(&a.role)?;
            let area = match (a.nation, a.provinces.is_empty(), a.communes.is_empty(), &a.polygon) {
                (true, true, true, None) => Area::Nation,
                (false, false, true, None) => Area::Provinces { codes: a.provinces },
                (false, true, false, None) => Area::Communes { codes: a.communes },
                (false, true, true, Some(wkt)) => Area::Polygon { wkt: wkt.clone() },
                _ => anyhow::bail!("give the area once: --nation, --provinces, --communes or --polygon"),
            };
            let operations = if a.operations.is_empty() {
                role.default_operations()
            } else {
                a.operations.iter().map(|o| Operation::parse(o)).collect::<Result<_, _>>()?
            };
            let agency = Agency {
                name: a.name,
                title: a.title,
                role,
                policy: Policy {
                    area,
                    personal_data: a.personal_data,
                    operations,
                    limits: Limits {
                        requests_per_second: a.requests_per_second,
                        features_per_response: a.features_per_response,
                        features_per_day: a.features_per_day,
                    },
                    valid_from: a.valid_from,
                    valid_until: a.valid_until,
                    purpose: a.purpose,
                },
                created_at: Utc::now(),
            };
            admin::save_agency(&store, &context.reference()?, &agency).await?;
            println!("agency {} saved", agency.name);
        }
        AgencyCommand::List => {
            let keys = store.keys().await?;
            for a in store.agencies().await? {
                let mut v = serde_json::json!(a);
                v["keys"] = keys.iter().filter(|k| k.agency == a.name).map(admin::key_json).collect();
                println!("{}", serde_json::to_string(&v)?);
            }
        }
    }
    Ok(())
}

pub async fn key(context: &crate::Context, command: KeyCommand) -> anyhow::Result<()> {
    let store = context.store().await?;
    match command {
        KeyCommand::Create { agency, expires_in_days } => {
            let expires = expires_in_days.map(|d| Utc::now() + chrono::Duration::days(d));
            let key = admin::new_key(&store, &agency, expires).await?;
            eprintln!("key {} for agency {agency}; it is shown once, keep it safe:", key.record.id);
            println!("{}", key.token);
        }
        KeyCommand::Rotate { id, overlap_hours } => {
            let key = admin::rotate(&store, &id, chrono::Duration::hours(overlap_hours)).await?;
            eprintln!("key {} replaces {id}, which works for {overlap_hours} more hours:", key.record.id);
            println!("{}", key.token);
        }
        KeyCommand::AddCert { agency, cert, spki_sha256, expires_in_days } => {
            let spki = match (cert, spki_sha256) {
                (Some(path), _) => landdb_api::tls::ClientCertificate::from_pem_file(&path)?.spki_sha256,
                (None, Some(spki)) => spki,
                (None, None) => anyhow::bail!("give --cert or --spki-sha256"),
            };
            let expires = expires_in_days.map(|d| Utc::now() + chrono::Duration::days(d));
            let record = admin::certificate_key(&store, &agency, &spki, expires).await?;
            println!(
                "key {} for agency {agency}: the client certificate whose public key has SHA-256 {spki}",
                record.id
            );
        }
        KeyCommand::AddOauth { agency, issuer, client_id, expires_in_days } => {
            let expires = expires_in_days.map(|d| Utc::now() + chrono::Duration::days(d));
            let record = admin::oauth_key(&store, &agency, &issuer, &client_id, expires).await?;
            println!("key {} for agency {agency}: client {client_id} of {issuer}", record.id);
        }
        KeyCommand::RotateDataKey => {
            let started = std::time::Instant::now();
            let done = store.rotate_data_key().await?;
            println!(
                "data key {} is active: {} right holders and {} quarantined records resealed (from {}) in {:.1} s; keyring {}",
                done.to,
                done.holders,
                done.quarantined,
                if done.from.is_empty() { "no key".to_owned() } else { done.from.join(", ") },
                started.elapsed().as_secs_f64(),
                store.keyring().path().display(),
            );
        }
        KeyCommand::Revoke { id } => {
            admin::revoke(&store, &id).await?;
            println!("key {id} revoked");
        }
        KeyCommand::List { agency } => {
            for k in store.keys().await?.iter().filter(|k| agency.as_ref().is_none_or(|a| &k.agency == a)) {
                println!("{}", admin::key_json(k));
            }
        }
    }
    Ok(())
}

pub async fn audit(context: &crate::Context, command: AuditCommand) -> anyhow::Result<()> {
    if let AuditCommand::Keygen { out } = &command {
        let public = crate::checkpoints::keygen(out)?;
        eprintln!("secret key written to {} (owner-only); public key, also in {}.pub:", out.display(), out.display());
        println!("{public}");
        return Ok(());
    }
    let store = context.store().await?;
    match command {
        AuditCommand::Keygen { .. } => {}
        AuditCommand::Verify { checkpoints, public_key } => verify(&store, checkpoints.zip(public_key)).await?,
        AuditCommand::Checkpoint { key, to } => {
            let mut signer = crate::checkpoints::Signer::open(&key, &to)?;
            if let Some(c) = signer.checkpoint(&store, false).await? {
                println!("checkpoint {c}: {}", c.line());
            }
        }
        AuditCommand::Show { agency, since, until, parcel: Some(parcel), limit } => {
            let id =
                parcel.parse::<i64>().map_err(|_| anyhow::anyhow!("--parcel {parcel}: give a parcel version ID"))?;
            let asked = AskedParcel::of(&store, id).await?;
            let query = AuditQuery {
                agency,
                since,
                until,
                received: Some(asked.versions),
                communes: asked.communes,
                after: 0,
                limit,
                ..AuditQuery::default()
            };
            for e in store.audit_entries(&query).await? {
                let personal =
                    query.received.as_ref().is_some_and(|vs| e.event.personal.iter().any(|v| vs.contains(v)));
                let line = serde_json::json!({
                    "seq": e.seq, "at": e.event.at, "agency": e.event.agency, "purpose": e.event.purpose,
                    "method": e.event.method, "endpoint": e.event.endpoint, "params": e.event.params,
                    "status": e.event.status, "personal_data": personal,
                });
                println!("{line}");
            }
        }
        AuditCommand::Subject { citizen_id, from, to } => {
            subject(&store, &context.reference()?, &citizen_id, from, to).await?;
        }
        AuditCommand::Show { agency, since, until, parcel: None, limit } => {
            let query = AuditQuery { agency, since, until, after: 0, limit, ..AuditQuery::default() };
            for e in store.audit_entries(&query).await? {
                println!("{}", serde_json::to_string(&e)?);
            }
        }
    }
    Ok(())
}

/// `landdb audit subject`: reads the log of the period once, keeping the entries that name the
/// citizen (by their blind index under any key of the keyring: the index changes with the key)
/// or that disclosed a version they hold.
async fn subject(
    store: &AnyStore,
    reference: &landdb_model::ReferenceData,
    raw: &str,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    let this_year = chrono::Datelike::year(&Utc::now());
    let citizen = CitizenId::parse(raw, reference, this_year).map_err(|e| anyhow::anyhow!("citizen ID: {e}"))?;
    let held: std::collections::BTreeSet<i64> =
        store.versions_held_by(&citizen).await?.into_iter().map(|v| v.0).collect();
    let marks: Vec<String> = store
        .keyring()
        .keys()?
        .iter()
        .map(|k| landdb_api::access::subject_param(&k.subject_mark(citizen.as_str())))
        .collect();
    let named = |params: &str| params.split('&').any(|p| marks.iter().any(|m| m == p));
    let (mut found, mut agencies) = (0usize, std::collections::BTreeSet::new());
    let mut query = AuditQuery { since, until, after: 0, limit: 5_000, ..AuditQuery::default() };
    loop {
        let page = store.audit_entries(&query).await?;
        let Some(last) = page.last() else { break };
        query.after = last.seq;
        for e in &page {
            let by_id = e.event.endpoint == landdb_api::access::HOLDER_ROUTE && named(&e.event.params);
            let parcels: Vec<i64> = e.event.received().filter(|v| held.contains(v)).collect();
            if !by_id && parcels.is_empty() {
                continue;
            }
            let mut parcels = parcels;
            parcels.sort_unstable();
            parcels.dedup();
            let personal = by_id || e.event.personal.iter().any(|v| held.contains(v));
            let how = match e.event.endpoint.as_str() {
                _ if by_id => "lookup by citizen ID",
                p if p.contains("/export") => "export",
                p if p.contains("/changes") => "change feed",
                p if p.starts_with("webhook") || p.starts_with("/subscriptions") => "webhook",
                p if p.contains("/tiles/") => "map tile",
                _ => "parcel request",
            };
            let params: Vec<&str> =
                e.event.params.split('&').filter(|p| !p.starts_with(&landdb_api::access::subject_param(""))).collect();
            let line = serde_json::json!({
                "seq": e.seq, "at": e.event.at, "agency": e.event.agency, "credential": e.event.key_id,
                "purpose": e.event.purpose, "how": how, "method": e.event.method, "endpoint": e.event.endpoint,
                "params": params.join("&"), "status": e.event.status, "personal_data": personal,
                "parcel_versions": parcels,
            });
            println!("{line}");
            found += 1;
            agencies.insert(e.event.agency.to_string());
        }
    }
    eprintln!(
        "{found} disclosures to {} agencies; the citizen holds or held {} parcel versions",
        agencies.len(),
        held.len()
    );
    Ok(())
}

/// `landdb audit verify`: the chain to the real end of the log, its indexes, and the
/// checkpoints when given.
async fn verify(store: &AnyStore, checkpoints: Option<(PathBuf, String)>) -> anyhow::Result<()> {
    let mut witness = match &checkpoints {
        Some((file, key)) => {
            let key = crate::checkpoints::read_public_key(key)?;
            let witness = crate::checkpoints::read_checkpoints(file, &key)?;
            if witness.is_empty() {
                anyhow::bail!("{} holds no checkpoints: nothing witnesses the audit head", file.display());
            }
            Some(witness)
        }
        None => None,
    };
    let mut contradiction = None;
    let verified = store
        .verify_audit(&mut |entry| {
            if let Some(w) = witness.as_mut()
                && contradiction.is_none()
                && let Err(e) = w.saw(entry.seq, &entry.hash)
            {
                contradiction = Some(e);
            }
        })
        .await?;
    let file = checkpoints.as_ref().map(|(f, _)| f.display().to_string()).unwrap_or_default();
    if let Some(e) = contradiction {
        anyhow::bail!("the audit log contradicts its checkpoints ({file}): {e}");
    }
    let verified = verified.map_err(|broken| anyhow::anyhow!("the audit log is broken: {broken}"))?;
    let witnessed = match witness {
        Some(w) => {
            let n = w
                .end(verified.last_seq)
                .map_err(|e| anyhow::anyhow!("the audit log contradicts its checkpoints ({file}): {e}"))?;
            format!(", {n} checkpoints hold")
        }
        None => String::new(),
    };
    println!("audit log intact: {} entries, head {}{witnessed}", verified.entries, verified.head);
    Ok(())
}
