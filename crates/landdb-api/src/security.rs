//! Security events for the operations centre's monitoring: what a SIEM needs to see of attempts
//! on the sharing API, as structured events, to a JSON-lines file or to syslog (RFC 5424 over UDP).
//!
//! The catalogue ([`Kind`]):
//!
//! | kind | when | severity |
//! |---|---|---|
//! | `authentication-failed` | a request with no credential, or one that is nobody's | notice |
//! | `credential-revoked` | a revoked key or certificate used | warning |
//! | `credential-expired` | an expired key or certificate used | warning |
//! | `forbidden` | a known caller refused an operation, a route or a time outside its policy (403) | warning |
//! | `limit-reached` | a caller's rate or daily quota reached (429) | notice |
//! | `tamper-found` | `audit verify` (the API's) found the audit log broken | critical |
//! | `anomaly` | an agency took, in a minute, far more parcels than its own norm | warning |
//! | `events-suppressed` | events dropped by the rate limit in the last second, counted | warning |
//!
//! Events are rate-limited (a burst of 200, then 100 a second; failed authentications, which
//! anyone can cause, on a budget of their own; tamper and anomalies never dropped): a flood of
//! bad requests cannot fill the disk, drown the collector or hide the other events; what is
//! dropped is counted in an `events-suppressed` event. A request is named by its route's
//! template (`GET /parcels/key/{commune}/{sheet}/{number}`), never its path: nothing a client
//! sends goes into an event but the method, and no parcel is named. Writing happens in a task of its own: a slow disk or collector never holds a request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// One JSON object a line, appended.
    JsonLines(PathBuf),
    /// RFC 5424 messages in UDP datagrams to a collector.
    Syslog(SocketAddr),
}

impl Sink {
    /// `syslog://HOST:PORT` (UDP), or a file path for JSON lines.
    pub fn parse(raw: &str) -> Result<Sink, String> {
        match raw.strip_prefix("syslog://") {
            Some(address) => address
                .parse()
                .map(Sink::Syslog)
                .map_err(|e| format!("{raw}: give syslog://HOST:PORT with an IP address ({e})")),
            None => Ok(Sink::JsonLines(PathBuf::from(raw))),
        }
    }
}

/// What happened (the catalogue above).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    AuthenticationFailed,
    CredentialRevoked,
    CredentialExpired,
    Forbidden,
    LimitReached,
    TamperFound,
    Anomaly,
    EventsSuppressed,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::AuthenticationFailed => "authentication-failed",
            Kind::CredentialRevoked => "credential-revoked",
            Kind::CredentialExpired => "credential-expired",
            Kind::Forbidden => "forbidden",
            Kind::LimitReached => "limit-reached",
            Kind::TamperFound => "tamper-found",
            Kind::Anomaly => "anomaly",
            Kind::EventsSuppressed => "events-suppressed",
        }
    }

    /// RFC 5424 severity: 2 critical, 4 warning, 5 notice.
    fn severity(self) -> u8 {
        match self {
            Kind::TamperFound => 2,
            Kind::AuthenticationFailed | Kind::LimitReached => 5,
            _ => 4,
        }
    }
}

/// One event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub kind: Kind,
    /// The agency, when the caller is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
    /// The key or certificate id used (never a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The request's method and path (no query: it may hold personal data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub detail: String,
}

impl Event {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Event {
        Event {
            at: Utc::now(),
            kind,
            agency: None,
            credential: None,
            request: None,
            status: None,
            detail: detail.into(),
        }
    }
}

/// Events a second after the burst.
const RATE: f64 = 100.0;
const BURST: f64 = 200.0;
/// An agency's minute is an anomaly past this many times its norm (and past `ANOMALY_FLOOR`).
const ANOMALY_FACTOR: f64 = 10.0;
const ANOMALY_FLOOR: u64 = 10_000;

/// The server's security events.
#[derive(Debug)]
pub struct SecurityEvents {
    out: Option<mpsc::Sender<Event>>,
    /// The rate limit of events about known callers, and of failed authentications.
    bucket: Mutex<(f64, Instant)>,
    anonymous: Mutex<(f64, Instant)>,
    dropped: AtomicU64,
    volumes: Mutex<HashMap<String, Volume>>,
}

/// An agency's parcels: this minute's, and its norm (an average over earlier minutes).
#[derive(Debug, Default)]
struct Volume {
    minute: i64,
    taken: u64,
    norm: Option<f64>,
    flagged: bool,
}

impl SecurityEvents {
    /// Events to nowhere (no sink configured).
    pub fn off() -> SecurityEvents {
        SecurityEvents::with(None)
    }

    /// Events to `sink`, written by a task started here.
    pub async fn to(sink: Sink) -> Result<SecurityEvents, String> {
        let (tx, rx) = mpsc::channel(1_024);
        let writer = Writer::open(sink).await?;
        tokio::spawn(writer.run(rx));
        let events = SecurityEvents::with(Some(tx));
        Ok(events)
    }

    fn with(out: Option<mpsc::Sender<Event>>) -> SecurityEvents {
        SecurityEvents {
            out,
            bucket: Mutex::new((BURST, Instant::now())),
            anonymous: Mutex::new((BURST, Instant::now())),
            dropped: AtomicU64::new(0),
            volumes: Mutex::new(HashMap::new()),
        }
    }

    /// Records `event`, unless the rate limit drops it (then it is counted, and the count goes
    /// out with the next event let through).
    pub fn record(&self, event: Event) {
        let Some(out) = &self.out else { return };
        // Tamper and anomalies are never dropped; failed authentications (which anyone can cause)
        // have a budget of their own, so that a flood of them cannot hide the rest.
        let bucket = match event.kind {
            Kind::TamperFound | Kind::Anomaly => None,
            Kind::AuthenticationFailed => Some(&self.anonymous),
            _ => Some(&self.bucket),
        };
        let allowed = bucket.is_none_or(|bucket| {
            let mut bucket = bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            bucket.0 = (bucket.0 + now.duration_since(bucket.1).as_secs_f64() * RATE).min(BURST);
            bucket.1 = now;
            let allowed = bucket.0 >= 1.0;
            if allowed {
                bucket.0 -= 1.0;
            }
            allowed
        });
        if !allowed {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = out.try_send(Event::new(
                Kind::EventsSuppressed,
                format!("{dropped} events dropped by the rate limit ({RATE} a second after a burst of {BURST})"),
            ));
        }
        if out.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts `parcels` taken by `agency` now; an `anomaly` when its minute passes ten times its
    /// own norm (and 10,000 parcels), once a minute.
    pub fn taken(&self, agency: &str, parcels: u64, now: DateTime<Utc>) {
        if self.out.is_none() || parcels == 0 {
            return;
        }
        let minute = now.timestamp() / 60;
        let mut volumes = self.volumes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !volumes.contains_key(agency) {
            volumes.insert(agency.to_owned(), Volume::default());
        }
        let Some(v) = volumes.get_mut(agency) else { return };
        if v.minute != minute {
            if v.minute != 0 {
                // The minutes with nothing taken between count as nothing.
                let idle = (minute - v.minute - 1).clamp(0, 60) as i32;
                let mut norm = v.norm.map_or(v.taken as f64, |n| 0.9 * n + 0.1 * v.taken as f64);
                norm *= 0.9f64.powi(idle);
                v.norm = Some(norm);
            }
            v.minute = minute;
            v.taken = 0;
            v.flagged = false;
        }
        v.taken += parcels;
        let Some(norm) = v.norm else { return };
        if !v.flagged && v.taken > ANOMALY_FLOOR && v.taken as f64 > ANOMALY_FACTOR * norm.max(1.0) {
            v.flagged = true;
            let taken = v.taken;
            drop(volumes);
            let mut event =
                Event::new(Kind::Anomaly, format!("{taken} parcels this minute, against a norm of {norm:.0} a minute"));
            event.agency = Some(agency.to_owned());
            self.record(event);
        }
    }
}

/// Writes events where they go.
struct Writer {
    sink: Sink,
    file: Option<tokio::fs::File>,
    socket: Option<tokio::net::UdpSocket>,
    host: String,
}

impl Writer {
    async fn open(sink: Sink) -> Result<Writer, String> {
        let host = std::fs::read_to_string("/etc/hostname").map_or_else(|_| "-".to_owned(), |h| h.trim().to_owned());
        let (mut file, mut socket) = (None, None);
        match &sink {
            Sink::JsonLines(path) => {
                let opened = tokio::fs::OpenOptions::new().create(true).append(true).open(path).await;
                file = Some(opened.map_err(|e| format!("security events to {}: {e}", path.display()))?);
            }
            Sink::Syslog(_) => {
                let bound = tokio::net::UdpSocket::bind("0.0.0.0:0").await;
                socket = Some(bound.map_err(|e| format!("security events to syslog: {e}"))?);
            }
        }
        Ok(Writer { sink, file, socket, host })
    }

    async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        while let Some(event) = events.recv().await {
            if let Err(e) = self.write(&event).await {
                tracing::warn!(error = %e, "cannot write a security event");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    async fn write(&mut self, event: &Event) -> std::io::Result<()> {
        match (&self.sink, &mut self.file, &self.socket) {
            (Sink::JsonLines(_), Some(file), _) => {
                let mut line = serde_json::to_vec(event).unwrap_or_default();
                line.push(b'\n');
                file.write_all(&line).await?;
                file.flush().await
            }
            (Sink::Syslog(to), _, Some(socket)) => {
                socket.send_to(syslog_message(event, &self.host).as_bytes(), to).await.map(|_| ())
            }
            _ => Ok(()),
        }
    }
}

/// An RFC 5424 message: facility authpriv (10), the event's severity, its fields as structured
/// data (`landdb@32473`, an example enterprise number until one is assigned), the detail as
/// the message.
pub fn syslog_message(event: &Event, host: &str) -> String {
    let priority = 10 * 8 + u16::from(event.kind.severity());
    let escape = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace(']', "\\]");
    let mut data = format!("[landdb@32473 kind=\"{}\"", event.kind.name());
    for (name, value) in [("agency", &event.agency), ("credential", &event.credential), ("request", &event.request)] {
        if let Some(v) = value {
            data.push_str(&format!(" {name}=\"{}\"", escape(v)));
        }
    }
    if let Some(status) = event.status {
        data.push_str(&format!(" status=\"{status}\""));
    }
    data.push(']');
    format!(
        "<{priority}>1 {} {host} landdb {} {} {data} {}",
        event.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        std::process::id(),
        event.kind.name(),
        json!(event.detail).as_str().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syslog_message_is_rfc_5424_with_its_fields_escaped() {
        let mut event = Event::new(Kind::CredentialRevoked, "key revoked at 2026-12-01");
        event.agency = Some("tax \"danang\"]".to_owned());
        event.status = Some(401);
        let m = syslog_message(&event, "db1");
        // <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG
        assert!(m.starts_with("<84>1 "), "{m}");
        let fields: Vec<&str> = m.splitn(8, ' ').collect();
        assert_eq!((fields[2], fields[3], fields[5]), ("db1", "landdb", "credential-revoked"));
        assert!(m.contains(r#"agency="tax \"danang\"\]""#), "{m}");
        assert!(m.contains(r#"status="401""#) && m.ends_with("key revoked at 2026-12-01"), "{m}");
    }

    #[tokio::test]
    async fn a_flood_is_cut_to_the_rate_and_the_rest_counted() {
        let path = std::env::temp_dir().join(format!("landdb-security-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let events = SecurityEvents::to(Sink::JsonLines(path.clone())).await.expect("a sink");
        for _ in 0..5_000 {
            events.record(Event::new(Kind::AuthenticationFailed, "no key"));
        }
        // Beside the flood, the other events still go out, and tamper is never dropped.
        events.record(Event::new(Kind::Forbidden, "refused"));
        for _ in 0..300 {
            events.record(Event::new(Kind::TamperFound, "broken"));
        }
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        events.record(Event::new(Kind::AuthenticationFailed, "no key"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let text = std::fs::read_to_string(&path).expect("the events");
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
        let failed = lines.iter().filter(|l| l["kind"] == "authentication-failed").count();
        assert!((200..=320).contains(&failed), "{failed} let through of 5,001");
        let suppressed: Vec<_> = lines.iter().filter(|l| l["kind"] == "events-suppressed").collect();
        assert_eq!(suppressed.len(), 1, "one count of what was dropped");
        assert_eq!(lines.iter().filter(|l| l["kind"] == "forbidden").count(), 1);
        assert_eq!(lines.iter().filter(|l| l["kind"] == "tamper-found").count(), 300);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn an_agency_far_above_its_norm_is_an_anomaly_once() {
        let (tx, mut rx) = mpsc::channel(16);
        let events = SecurityEvents::with(Some(tx));
        let start = DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z").expect("time").with_timezone(&Utc);
        for m in 0..30 {
            events.taken("tax", 500, start + chrono::Duration::minutes(m));
        }
        assert!(rx.try_recv().is_err(), "a steady agency is no anomaly");
        let burst = start + chrono::Duration::minutes(31);
        for _ in 0..30 {
            events.taken("tax", 1_000, burst);
        }
        let event = rx.try_recv().expect("an anomaly");
        assert_eq!((event.kind, event.agency.as_deref()), (Kind::Anomaly, Some("tax")));
        assert!(rx.try_recv().is_err(), "once a minute");
    }
}
