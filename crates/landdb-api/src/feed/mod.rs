//! The scoped change feed, `GET /collections/parcels/changes`: how an agency keeps a copy of the
//! parcels it may see without crawling pages or exporting everything again.
//!
//! A follower starts with no token and reads a snapshot of its scope, page by page, all pages of
//! one moment of the feed; then the changes after that moment, in commit order, as events
//! (`created`, `updated`, `entered`, `retired`, `left`: [`events::Kind`]). Each answer ends with
//! the token to ask with next. With `wait`, an answer that would be empty waits for a change
//! (long polling). When the agency's area changes, the next answers move the follower's copy to
//! the new area: an `entered` for each parcel it now sees, a `left` for each it no longer sees
//! (the area its tokens were made under is kept in the store, by the fingerprint they carry).
//! When its personal-data grant changes, every parcel reads differently: the next answer starts
//! a new snapshot, marked `reset`; the follower keeps what the snapshot sends and drops the rest.
//! With `Accept: text/event-stream` the same pages go out as Server-Sent Events ([`stream`]).
//!
//! Everything goes through the caller's [`crate::scope::Scoped`] view and leaves through its release, so the
//! feed answers under the same rules as `items`: area, fields, limits, quota and audit.

pub mod events;
mod stream;
pub mod token;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use landdb_model::FeedPosition;

pub use token::{FeedKey, Phase, Token};

use crate::AppState;
use crate::access::Access;
use crate::crs::OutputCrs;
use crate::features::{Field, Output, each_feature, json_string};
use crate::ogc::{ApiError, json_response};
use crate::routes::Call;
use crate::scope::SnapshotGap;
use events::Event;

/// The parameters of the feed.
pub const CHANGES: &[(&str, &str)] = &[
    (
        "after",
        "where to go on from: the `next` token of the previous answer (none: start with a snapshot of the agency's parcels)",
    ),
    ("limit", "events an answer, 1 to 10000 (larger values are lowered to 10000); 1000 when absent"),
    (
        "wait",
        "seconds to wait, when there is nothing new, for something to happen (long polling), 0 to 50; 0 when absent",
    ),
];

/// The longest wait: below the request's time budget.
const MAX_WAIT: u64 = 50;
/// Events an answer when `limit` is not given.
const DEFAULT_LIMIT: usize = 1_000;
/// How often a waiting follower looks whether the engine has moved.
const WAIT_STEP: Duration = Duration::from_millis(50);

pub async fn changes(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(collection): Path<String>,
    headers: axum::http::HeaderMap,
    call: Call,
) -> Result<Response, ApiError> {
    crate::routes::known_collection(&collection)?;
    let params = call.params(CHANGES)?;
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(_) => params.limit()?,
    };
    let limit = access.page_limit(limit);
    let wait =
        match params.get("wait") {
            None => 0,
            Some(raw) => raw.parse::<u64>().ok().filter(|w| *w <= MAX_WAIT).ok_or_else(|| {
                ApiError::bad_parameter(format!("wait={raw}: give whole seconds from 0 to {MAX_WAIT}"))
            })?,
        };
    let key = app.sources.feed_key().await?;
    // A stream resumes from the id of the last event it received (`Last-Event-ID`).
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).or(params.get("after"));
    let opened = resume.map(|raw| key.open(&access.caller.agency.name, raw)).transpose()?;
    let scope = app.sources.follow_scope(&access).await?;
    let (phase, reset) = place(&app, &access, scope, opened).await?;
    let streamed = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if streamed {
        return Ok(stream::events(app, access, scope, phase, reset, limit));
    }
    let deadline = Instant::now() + Duration::from_secs(wait);
    let page = read_page(&app, &access, phase, limit, deadline, None).await?;
    let next = key.seal(&access.caller.agency.name, Token { phase: page.next, scope });
    let mut out = Vec::with_capacity(page.written.len() + 1024);
    out.extend_from_slice(b"{\"changes\":[");
    out.extend_from_slice(page.array());
    out.extend_from_slice(b"],\"next\":");
    json_string(&mut out, &next);
    let phase_name = if matches!(page.next, Phase::Snapshot { .. }) || page.complete { "snapshot" } else { "changes" };
    out.extend_from_slice(format!(",\"phase\":\"{phase_name}\",\"reset\":{reset}").as_bytes());
    if phase_name == "snapshot" {
        out.extend_from_slice(format!(",\"snapshotComplete\":{}", page.complete).as_bytes());
    } else {
        out.extend_from_slice(format!(",\"caughtUp\":{}", page.caught_up).as_bytes());
    }
    out.extend_from_slice(b",\"links\":[{\"href\":");
    json_string(&mut out, &format!("{}/collections/parcels/changes?after={next}", call.base));
    out.extend_from_slice(b",\"rel\":\"next\",\"type\":\"application/json\",\"title\":\"what comes next\"}]}");
    Ok(page.disclosure.on(json_response(StatusCode::OK, "application/json", out)))
}

/// A page of a caller's feed, written: its events one after another, each followed by a comma,
/// and where a follower goes on from after each.
pub(crate) struct WrittenPage {
    pub(crate) written: Vec<u8>,
    /// Each event's end in `written` (before its comma), and the place after it.
    pub(crate) events: Vec<(usize, Phase)>,
    pub(crate) next: Phase,
    /// The page ends a snapshot.
    pub(crate) complete: bool,
    pub(crate) caught_up: bool,
    pub(crate) disclosure: crate::scope::Disclosure,
}

impl WrittenPage {
    /// The events as the elements of a JSON array (without the brackets).
    pub(crate) fn array(&self) -> &[u8] {
        self.written.strip_suffix(b",").unwrap_or(&self.written)
    }

    /// Each event's JSON, with the place after it.
    pub(crate) fn each_event(&self) -> impl Iterator<Item = (&[u8], Phase)> {
        let mut start = 0;
        self.events.iter().map(move |(end, after)| {
            let json = &self.written[start..*end];
            start = end + 1;
            (json, *after)
        })
    }
}

/// Where a follower goes on from: the place its token holds; with no token, a new snapshot at
/// the engine's position (then `true`: the follower drops what the snapshot does not send again).
/// A token of another scope (the agency's policy changed) moves an up-to-date copy to the new
/// scope by the parcels that entered or left it, when only the area changed; a copy of the
/// personal-data grant that changed, or in the middle of a snapshot, starts again.
/// `scope` is the caller's ([`crate::scope::Sources::follow_scope`]).
pub(crate) async fn place(
    app: &AppState,
    access: &Access,
    scope: u64,
    opened: Option<Token>,
) -> Result<(Phase, bool), ApiError> {
    let again = || (Phase::Snapshot { at: app.sources.scoped(access).position(), after: None }, true);
    let Some(token) = opened else { return Ok(again()) };
    if token.scope == scope {
        return Ok((token.phase, false));
    }
    let agency = &access.caller.agency;
    if let Phase::Changes { after } = token.phase
        && let Some(before) = app.sources.followed_scope(&agency.name, token.scope, &app.reference).await?
        && before.personal_data == agency.policy.personal_data
    {
        return Ok((Phase::Rescope { at: after, after: None, from: token.scope }, false));
    }
    Ok(again())
}

/// Which parcels of a page go out (a webhook's communes, land-use codes and filter); the rest are
/// passed over before the release, so that neither the quota nor the audit log counts them.
pub(crate) type Wanted<'w> = Option<&'w (dyn Fn(&landdb_engine::Parcel<'_>) -> bool + Sync)>;

/// The caller's page from `phase`: its parcels released (limits, quota, what goes on record),
/// its events written. A page of changes with nothing in it waits until `deadline` for one.
pub(crate) async fn read_page(
    app: &AppState,
    access: &Access,
    mut phase: Phase,
    limit: usize,
    deadline: Instant,
    wanted: Wanted<'_>,
) -> Result<WrittenPage, ApiError> {
    let wanted = |p: &landdb_engine::Parcel<'_>| wanted.is_none_or(|w| w(p));
    let fields = Field::visible(access);
    let behind_until = Instant::now() + WAIT_STEP * 100;
    // A page of a snapshot or a rescope cannot be read while the engine is behind its position.
    macro_rules! or_behind {
        ($read:expr) => {
            match $read {
                Ok(page) => page,
                Err(SnapshotGap::Behind) if Instant::now() < behind_until => {
                    tokio::time::sleep(WAIT_STEP).await;
                    continue;
                }
                Err(SnapshotGap::Behind) => return Err(behind()),
                Err(SnapshotGap::Expired) => return Err(expired()),
            }
        };
    }
    loop {
        let scoped = app.sources.scoped(access);
        // The events of the page, the parcels they add, and where the page ends.
        let (events, added, next, complete, caught_up): (
            Vec<Event>,
            Vec<landdb_engine::Parcel<'_>>,
            Phase,
            bool,
            bool,
        );
        // What the added parcels are read from.
        let snapshot_page;
        let changes_added;
        match phase {
            Phase::Snapshot { at, after } => {
                snapshot_page = or_behind!(scoped.snapshot(at, after, limit).await?);
                let parcels = scoped.snapshot_parcels(&snapshot_page);
                // After the last parcel read (wanted or not).
                let last_read = parcels.last().map(|p| p.version());
                next = if snapshot_page.more {
                    Phase::Snapshot { at, after: last_read.or(after) }
                } else {
                    Phase::Changes { after: at }
                };
                events = parcels.iter().map(|p| Event::plain(events::Kind::Snapshot, p.version(), at)).collect();
                added = parcels;
                (complete, caught_up) = (!snapshot_page.more, false);
            }
            Phase::Rescope { at, after, from } => {
                let before = app.sources.followed_scope(&access.caller.agency.name, from, &app.reference).await?;
                let Some(before) = before else { return Err(unknown_scope()) };
                let (page, moves, through) = or_behind!(scoped.rescope(at, after, &before.scope, limit).await?);
                snapshot_page = page;
                next = if snapshot_page.more {
                    Phase::Rescope { at, after: through, from }
                } else {
                    Phase::Changes { after: at }
                };
                events = moves
                    .iter()
                    .map(|(v, entered)| {
                        let kind = if *entered { events::Kind::Entered } else { events::Kind::Left };
                        Event::plain(kind, *v, at)
                    })
                    .collect();
                added = scoped.snapshot_parcels(&snapshot_page);
                (complete, caught_up) = (false, false);
            }
            Phase::Changes { after } => {
                let page = scoped.changes(after, limit).await?;
                if page.events.is_empty() && page.caught_up && Instant::now() < deadline {
                    // Nothing new: wait for the engine (which follows the store) to move on.
                    phase = Phase::Changes { after: page.position };
                    wait_past(app, access, page.position, deadline).await;
                    continue;
                }
                next = Phase::Changes { after: page.position };
                (complete, caught_up) = (false, page.caught_up);
                events = page.events;
                changes_added = page.added;
                added = changes_added.parcels().collect();
            }
        }
        let added: Vec<_> = added.into_iter().filter(|p| wanted(p)).collect();
        let release = scoped.release(added, &fields).await?;
        let (written, events) = write_events(&events, &release, &fields, next, |e| match phase {
            Phase::Snapshot { at, .. } => Phase::Snapshot { at, after: Some(e.version) },
            Phase::Rescope { at, from, .. } => Phase::Rescope { at, after: Some(e.version), from },
            Phase::Changes { .. } => Phase::Changes { after: e.position },
        });
        let disclosure = release.into_disclosure();
        return Ok(WrittenPage { written, events, next, complete, caught_up, disclosure });
    }
}

/// Writes `events` with the parcels `release` hands over, each event followed by a comma, and
/// says where a follower goes on from after each (`after` of the event; `next` after the last,
/// so that what the caller does not see after it is passed over too). An event that adds a
/// version not handed over (not wanted) goes out only when it replaces a version, as that
/// version's `left`: the receiver may hold it.
fn write_events(
    events: &[Event],
    release: &crate::scope::Release<'_>,
    fields: &[Field],
    next: Phase,
    after: impl Fn(&Event) -> Phase,
) -> (Vec<u8>, Vec<(usize, Phase)>) {
    let crs84 = OutputCrs::crs84();
    let output = Output { crs: &crs84, transformer: None };
    // Each feature written apart, then placed in its event.
    let mut features_written = Vec::with_capacity(release.parcels().len() * 600);
    let mut starts = Vec::with_capacity(release.parcels().len());
    each_feature(&mut features_written, release, fields, &output, |w, version| starts.push((version, w.len())));
    let mut features = std::collections::HashMap::with_capacity(starts.len());
    for (i, (version, start)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(features_written.len(), |(_, e)| *e);
        features.insert(*version, &features_written[*start..end]);
    }
    let going_out: Vec<Event> = events
        .iter()
        .filter_map(|e| {
            if !e.kind.adds() || features.contains_key(&e.version) {
                return Some(e.clone());
            }
            let replaced = e.replaces?;
            Some(Event { kind: events::Kind::Left, version: replaced, replaces: None, ..e.clone() })
        })
        .collect();
    let mut out = Vec::with_capacity(features_written.len() + going_out.len() * 64);
    let mut places = Vec::with_capacity(going_out.len());
    for (i, e) in going_out.iter().enumerate() {
        out.extend_from_slice(b"{\"kind\":\"");
        out.extend_from_slice(e.kind.name().as_bytes());
        out.extend_from_slice(b"\",\"id\":");
        out.extend_from_slice(itoa::Buffer::new().format(e.version.0).as_bytes());
        if let Some(batch) = e.batch {
            out.extend_from_slice(b",\"batch\":");
            out.extend_from_slice(itoa::Buffer::new().format(batch.0).as_bytes());
        }
        for (name, list) in [("came_from", &e.came_from), ("went_to", &e.went_to)] {
            if !list.is_empty() {
                out.extend_from_slice(format!(",\"{name}\":").as_bytes());
                let ids: Vec<i64> = list.iter().map(|v| v.0).collect();
                out.extend_from_slice(serde_json::to_string(&ids).unwrap_or_default().as_bytes());
            }
        }
        if let Some(r) = e.replaces {
            out.extend_from_slice(b",\"replaces\":");
            out.extend_from_slice(itoa::Buffer::new().format(r.0).as_bytes());
        }
        if e.kind.adds()
            && let Some(feature) = features.get(&e.version)
        {
            out.extend_from_slice(b",\"feature\":");
            out.extend_from_slice(feature);
        }
        out.push(b'}');
        places.push((out.len(), if i + 1 == going_out.len() { next } else { after(e) }));
        out.push(b',');
    }
    (out, places)
}

/// Waits until the engine has applied changes after `position`, or `deadline`.
async fn wait_past(app: &AppState, access: &Access, position: FeedPosition, deadline: Instant) {
    while Instant::now() < deadline && app.sources.scoped(access).position() <= position {
        tokio::time::sleep(WAIT_STEP.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

fn behind() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Behind",
        "this server has not yet caught up with the snapshot this token began on another server; ask again in a moment",
    )
}

fn unknown_scope() -> ApiError {
    ApiError::bad_parameter(
        "after: this token moves a copy from a scope this server cannot read back: start again without `after`",
    )
}

fn expired() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "SnapshotExpired",
        "too much has changed since this snapshot began: start again without `after` (and read snapshots faster than the country changes)",
    )
}
