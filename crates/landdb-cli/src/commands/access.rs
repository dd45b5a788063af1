//! `landdb agency …`, `landdb key …`, `landdb audit …`: agencies and their policies, API keys,
//! and the audit log, run by the national operator against the store (running servers pick the
//! changes up within a fraction of a second).

use chrono::{DateTime, Utc};
use landdb_access::{Agency, Area, Limits, Operation, Policy, Role};
use landdb_api::admin;
use landdb_store::{AccessStore, AuditQuery};

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
    /// Revoke a key at once.
    Revoke { id: String },
    /// List keys (never their secrets).
    List { agency: Option<String> },
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Follow the hash chain from the first entry to the recorded head: prints the head, or
    /// names the first broken entry and fails.
    Verify,
    /// Show entries: an agency's, in a period, or those that disclosed a parcel's personal data.
    Show {
        #[arg(long)]
        agency: Option<String>,
        #[arg(long)]
        since: Option<DateTime<Utc>>,
        #[arg(long)]
        until: Option<DateTime<Utc>>,
        /// A parcel version: entries that disclosed the personal data of any version of it.
        #[arg(long)]
        parcel: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: i64,
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
    let store = context.store().await?;
    match command {
        AuditCommand::Verify => match admin::verify(&store).await? {
            Ok(v) => println!("audit log intact: {} entries, head {}", v.entries, v.head),
            Err(broken) => anyhow::bail!("the audit log is broken: {broken}"),
        },
        AuditCommand::Show { agency, since, until, parcel, limit } => {
            let disclosed = match parcel {
                Some(p) => {
                    Some(admin::versions_of_parcel(&store, &p).await.map_err(|e| anyhow::anyhow!(e.description))?)
                }
                None => None,
            };
            let query = AuditQuery { agency, since, until, disclosed, after: 0, limit };
            for e in store.audit_entries(&query).await? {
                println!("{}", serde_json::to_string(&e)?);
            }
        }
    }
    Ok(())
}
