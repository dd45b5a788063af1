//! `landdb sync`: the client an agency runs to keep a copy of the parcels it may see. It reads
//! the server's change feed (`/collections/parcels/changes`: a snapshot of the agency's parcels,
//! then every change to them) and applies each page to the copy with the page's token in one
//! transaction, so that it can be killed at any point and started again without a gap or a
//! duplicate. `once` stops when the copy has caught up (for cron); otherwise it follows live.

pub mod mirror;
pub mod plan;

use std::time::Duration;

use anyhow::{Context, Result, bail};

pub use mirror::Copy;
pub use plan::{Counts, Page, Plan, plan};

/// The server an agency follows, and its key.
#[derive(Debug, Clone)]
pub struct Source {
    /// The server's address, as `http://host:port` (a trailing slash is ignored).
    pub url: String,
    pub key: String,
    /// A CA (PEM) to trust besides the system's, for a server whose certificate a private CA
    /// issued (a platform's).
    pub ca_cert: Option<std::path::PathBuf>,
}

/// How to follow.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Stop once caught up.
    pub once: bool,
    /// Events a page.
    pub limit: usize,
    /// Seconds a request waits for a change when there is none (when following live).
    pub wait: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { once: false, limit: 1_000, wait: 30 }
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub pages: u64,
    pub events: Counts,
    /// The last page's events.
    pub last: Counts,
    /// Whether the copy has caught up with the feed at least once (what comes after is live).
    pub caught_up: bool,
}

/// How often a failed request is tried again before the run gives up (about a minute).
const RETRIES: u32 = 12;

/// Follows `source` into `copy`, telling `progress` the summary so far after every page.
pub async fn sync(source: &Source, copy: &Copy, options: Options, progress: &dyn Fn(&Summary)) -> Result<Summary> {
    let base = source.url.trim_end_matches('/');
    let mut client = reqwest::Client::builder().timeout(Duration::from_secs(options.wait + 60));
    if let Some(path) = &source.ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("--ca-cert {}", path.display()))?;
        let ca = reqwest::Certificate::from_pem(&pem)
            .with_context(|| format!("--ca-cert {}: not a PEM certificate", path.display()))?;
        client = client.add_root_certificate(ca);
    }
    let client = client.build().context("cannot make an HTTP client")?;
    let mut token = copy.resume(base).await?;
    let mut summary = Summary::default();
    let mut caught_up = false;
    loop {
        let wait = if caught_up && !options.once { options.wait } else { 0 };
        let mut url = format!("{base}/collections/parcels/changes?limit={}&wait={wait}", options.limit);
        if let Some(t) = &token {
            url.push_str("&after=");
            url.push_str(t);
        }
        let page = fetch(&client, &url, &source.key).await?;
        let plan = plan(&page).with_context(|| format!("a page from {base}"))?;
        copy.apply(base, &plan, &page.next).await?;
        summary.pages += 1;
        summary.events.add(plan.counts);
        summary.last = plan.counts;
        progress(&summary);
        token = Some(page.next);
        caught_up = page.phase == "changes" && page.caught_up;
        summary.caught_up |= caught_up;
        if caught_up && options.once {
            return Ok(summary);
        }
    }
}

/// One page, tried again (with a growing pause) while the server is away, busy or limiting.
async fn fetch(client: &reqwest::Client, url: &str, key: &str) -> Result<Page> {
    let mut pause = Duration::from_millis(250);
    for attempt in 0..=RETRIES {
        let answer = client.get(url).bearer_auth(key).send().await;
        let retry = match answer {
            Ok(r) if r.status().is_success() => {
                return r.json::<Page>().await.context("the server's page is not a page of the change feed");
            }
            Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                let wait = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs);
                format!("{} ({})", r.status(), wait.map_or(String::new(), |w| format!("retry after {w:?}")))
            }
            Ok(r) => {
                let status = r.status();
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                let why = body["description"].as_str().unwrap_or("no description");
                bail!("the server refused the feed: {status}: {why}");
            }
            Err(e) => {
                // A certificate that is not trusted does not become so by asking again.
                let mut why = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    why = format!("{why}: {s}");
                    source = s.source();
                }
                if why.contains("certificate") {
                    bail!("the server's certificate is not trusted ({why}); give its CA with --ca-cert");
                }
                why
            }
        };
        if attempt == RETRIES {
            bail!("the server did not answer after {RETRIES} tries: {retry}");
        }
        tracing::warn!(attempt, why = %retry, "the feed did not answer; trying again");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
    bail!("unreachable: the loop returns or fails")
}
