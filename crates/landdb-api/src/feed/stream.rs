//! The change feed as Server-Sent Events (`Accept: text/event-stream`): the same pages, sent as
//! they come, each event with its own `id` (the token to resume from after it, which a browser's
//! `EventSource` sends back as `Last-Event-ID` when it reconnects). Each page is released and put
//! on record as it is sent, as a page asked for alone would be.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::Response;

use super::{Phase, Token, read_page};
use crate::AppState;
use crate::access::Access;
use crate::ogc::streamed_response;

/// How long a stream waits for something new before it sends a comment (proxies close idle
/// connections).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

struct State {
    app: Arc<AppState>,
    access: Access,
    phase: Phase,
    reset: bool,
    limit: usize,
    scope: u64,
    ended: bool,
}

/// The event stream from `phase`, for a caller of `scope` ([`crate::scope::Sources::follow_scope`]).
pub fn events(app: Arc<AppState>, access: Access, scope: u64, phase: Phase, reset: bool, limit: usize) -> Response {
    let state = State { app, access, phase, reset, limit, scope, ended: false };
    let uri = axum::http::Uri::from_static("/collections/parcels/changes");
    let stream = futures::stream::unfold(state, move |mut s| {
        let uri = uri.clone();
        async move {
            if s.ended {
                return None;
            }
            let mut out = Vec::new();
            if std::mem::take(&mut s.reset) {
                out.extend_from_slice(b"event: reset\ndata: {}\n\n");
            }
            let key = match s.app.sources.feed_key().await {
                Ok(k) => k,
                Err(e) => return Some((Ok::<_, Infallible>(Bytes::from(failed(&e))), State { ended: true, ..s })),
            };
            let page = match read_page(&s.app, &s.access, s.phase, s.limit, Instant::now() + KEEP_ALIVE, None).await {
                Ok(page) => page,
                Err(e) => return Some((Ok(Bytes::from(failed(&e))), State { ended: true, ..s })),
            };
            let agency = &s.access.caller.agency.name;
            for (json, after) in page.each_event() {
                let kind = json
                    .strip_prefix(b"{\"kind\":\"")
                    .and_then(|rest| rest.split(|b| *b == b'"').next())
                    .unwrap_or(b"change");
                out.extend_from_slice(b"id: ");
                out.extend_from_slice(key.seal(agency, Token { phase: after, scope: s.scope }).as_bytes());
                out.extend_from_slice(b"\nevent: ");
                out.extend_from_slice(kind);
                out.extend_from_slice(b"\ndata: ");
                out.extend_from_slice(json);
                out.extend_from_slice(b"\n\n");
            }
            if page.complete {
                out.extend_from_slice(b"id: ");
                out.extend_from_slice(key.seal(agency, Token { phase: page.next, scope: s.scope }).as_bytes());
                out.extend_from_slice(b"\nevent: snapshot-complete\ndata: {}\n\n");
            }
            if out.is_empty() {
                out.extend_from_slice(b": nothing new\n\n");
            }
            s.app.gate.audit.record_streamed(&s.access, &uri, page.disclosure);
            s.phase = page.next;
            Some((Ok(Bytes::from(out)), s))
        }
    });
    let mut response = streamed_response(StatusCode::OK, "text/event-stream", Body::from_stream(stream));
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-cache"));
    response
}

/// The event that ends a stream that cannot go on (the quota spent, the store away), with the
/// answer a request would have had.
fn failed(e: &crate::ogc::ApiError) -> Vec<u8> {
    // With the status the answer would have had: a stream has sent its own already.
    let mut body = e.body();
    body["status"] = e.status.as_u16().into();
    format!("event: error\ndata: {body}\n\n").into_bytes()
}
