//! The sharing API: OGC API – Features over HTTP (axum), answered from the in-memory engine
//! (`landdb-engine`) and, for what it does not hold, the store. Every route passes one enforcement
//! point ([`access::admit`]: keys, policies, limits, audit), and every handler that answers with
//! parcels takes the caller's [`access::Access`], which every parcel passes before it leaves.

// The OpenAPI document is one `json!` literal, deeper than the default limit.
#![recursion_limit = "256"]

pub mod access;
pub mod admin;
pub mod answer;
pub mod crs;
pub mod cursor;
pub mod feed;
pub mod filter;
pub mod health;
pub mod html;
pub mod jobs;
pub mod metrics;
pub mod oauth;
pub mod ogc;
pub mod openapi;
pub mod pages;
pub mod params;
pub mod reference;
pub mod routes;
pub mod scope;
pub mod security;
pub mod spool;
pub mod tls;
pub mod upload;
pub mod webhooks;

pub use answer::{export, features, formats, tiles};

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use landdb_engine::Engine;
use landdb_model::ReferenceData;
use landdb_store::{AnyStore, FeedWaiter, ParcelStore};

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The engine and the store: parcels only through [`scope::Sources::scoped`].
    pub sources: scope::Sources,
    /// Administrative units and land-use codes, for their collections.
    pub reference: Arc<ReferenceData>,
    /// The address clients reach the server at, for links; the `Host` header otherwise.
    pub public_url: Option<String>,
    /// Upload jobs.
    pub jobs: jobs::Jobs,
    /// Request counts and latencies, for `/metrics`.
    pub metrics: metrics::Metrics,
    /// Keys, policies, limits and the audit log.
    pub gate: access::Gate,
    /// The store's reachability and the engine's lag, for `/ready` and `/health`.
    pub health: health::Health,
    /// Where webhook callbacks may go.
    pub webhooks: webhooks::Webhooks,
    /// OAuth2 bearer tokens of the platform's identity provider, when it is configured.
    pub oauth: Option<oauth::OAuth>,
    /// Security events for the operations centre (off unless a sink is configured).
    pub security: security::SecurityEvents,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(routes::landing))
        .route("/conformance", get(routes::conformance))
        .route("/api", get(routes::openapi))
        .route("/collections", get(routes::collections))
        .route("/collections/{id}", get(routes::collection))
        .route("/collections/{id}/items", get(routes::items))
        .route("/collections/{id}/queryables", get(routes::queryables))
        .route("/collections/{collection}/items/{id}", get(routes::item))
        .route("/collections/{collection}/items/{id}/history", get(routes::history))
        .route("/collections/{id}/export", get(routes::export))
        .route("/collections/{id}/changes", get(feed::changes))
        .route("/subscriptions", get(webhooks::list).post(webhooks::create))
        .route("/subscriptions/{id}", get(webhooks::one).delete(webhooks::delete))
        .route("/subscriptions/{id}/dead-letters", get(webhooks::dead_letters))
        .route("/subscriptions/{id}/replay", axum::routing::post(webhooks::replay))
        .route("/parcels/at", get(routes::at_point))
        .route("/parcels/national-id/{id}", get(routes::by_national_id))
        .route("/parcels/key/{commune}/{sheet}/{number}", get(routes::by_key))
        .route(access::HOLDER_ROUTE, get(routes::holder_parcels))
        .route("/collections/{id}/tiles", get(routes::tilesets))
        .route("/collections/{collection}/tiles/{set}/{z}/{y}/{x}", get(routes::tile))
        .route("/map", get(pages::map))
        .route("/upload", get(pages::upload))
        .route("/assets/{name}", get(pages::asset))
        // The upload reads its body itself, under its own limits (`upload.rs`).
        .route("/jobs", axum::routing::post(routes::submit_job))
        .route("/jobs/{id}", get(routes::job))
        .route("/jobs/{id}/report", get(routes::job_report))
        .route("/jobs/{id}/quarantine", get(routes::job_quarantine))
        .route("/health", get(routes::health))
        .route("/ready", get(routes::ready))
        .route("/metrics", get(routes::metrics))
        .route("/admin/agencies", get(admin::list_agencies).post(admin::put_agency))
        .route("/admin/agencies/{name}/keys", axum::routing::post(admin::create_key))
        .route("/admin/keys/{id}", axum::routing::delete(admin::revoke_key))
        .route("/admin/keys/{id}/rotate", axum::routing::post(admin::rotate_key))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/audit/verify", get(admin::verify_audit))
        .route_layer(axum::middleware::from_fn_with_state(Arc::clone(&state), gateway))
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn(html::pages))
        // gzip or brotli when the client asks for it (GeoJSON shrinks to about a fifth), and one
        // structured log line a request (method, URI, status, latency) at info level under the
        // target `tower_http` (LANDDB_LOG=…,tower_http=info turns them on).
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .with_state(state)
}

/// The span of a request's log line: the path as logs may show it, never a citizen ID
/// ([`access::loggable_path`]). Under `tower_http`'s target, as the layer's own spans, so off
/// unless `LANDDB_LOG` asks for `tower_http=info`: a span that is on costs about 7,000
/// instructions a request (its fields formatted and kept, entered and left at every poll), a
/// quarter of a point lookup's whole cost.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::info_span!(
        target: "tower_http::trace::make_span",
        "request",
        method = %request.method(),
        path = %access::loggable_path(request.uri().path()),
        version = ?request.version(),
    )
}

/// Every routed request passes here: counted under its route (the path template, not the path:
/// one metrics row for every parcel lookup, not one a parcel), let through or refused by the
/// enforcement point ([`access::admit`]), answered with an ETag (or a 304, see [`tagged`]), and
/// put on record with what its answer disclosed ([`access::Pass::record`]). One middleware, not
/// three: a layer costs a boxed future and a clone of the services behind it on every request.
async fn gateway(
    axum::extract::State(app): axum::extract::State<Arc<AppState>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    // A shared string: cloning it costs no allocation.
    let route = request.extensions().get::<axum::extract::MatchedPath>().cloned();
    let is_upload = request.method() == axum::http::Method::POST;
    // A platform's token is verified here (its keys may have to be fetched); the enforcement
    // point then finds its client's credential as it finds a key.
    if let Some(oauth) = &app.oauth
        && let Some(token) = access::bearer(request.headers()).filter(|t| oauth::is_jwt(t))
        && route
            .as_ref()
            .is_some_and(|r| access::requirement(request.method(), r.as_str()) != access::Requirement::Public)
        && let Some(credential) = oauth.verify(token).await
    {
        request.extensions_mut().insert(oauth::Verified(credential));
    }
    let response = match access::admit(&app, &mut request) {
        Err(refusal) => *refusal,
        Ok(pass) => {
            let answer = caught(tagged(request, next));
            // Every request has a time budget but an upload, which takes as long as the file
            // takes to arrive (its import runs as a job, outside the request).
            let mut response = if is_upload {
                answer.await
            } else {
                match tokio::time::timeout(REQUEST_BUDGET, answer).await {
                    Ok(r) => r,
                    Err(_) => axum::response::IntoResponse::into_response(ogc::ApiError::new(
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "Timeout",
                        format!(
                            "the answer took longer than {} s: ask for less (a smaller box, a page, a filter)",
                            REQUEST_BUDGET.as_secs()
                        ),
                    )),
                }
            };
            // While the primary is away, an answer leaves only once its entry is on disk in
            // the spool (otherwise the writer puts it in the chain just after).
            if let Some(pass) = pass
                && pass.record(&app, &mut response)
                && app.gate.audit.state.away()
                && !app.gate.audit.flush().await
            {
                response = axum::response::IntoResponse::into_response(ogc::ApiError::audit_unavailable());
            }
            response
        }
    };
    if let Some(route) = route {
        app.metrics.observe(route.as_str(), response.status().as_u16(), started.elapsed());
    }
    response
}

/// Weak ETags from the answer itself: a hash of the body a GET answered with 200 (bodies up to
/// [`TAGGED_BODY`]; streamed exports carry none). A client that sends the tag back in
/// `If-None-Match` gets a 304 without the body while the answer is unchanged. The tag depends on
/// nothing but what the caller was sent: no feed position (it would count every change in the
/// country), and `*` matches only an answer that exists (RFC 9110: not a 404).
async fn tagged(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::http::{HeaderValue, Method, StatusCode, header};
    use axum::response::IntoResponse;
    use std::hash::BuildHasher;
    if request.method() != Method::GET {
        return next.run(request).await;
    }
    // A page and its JSON share the body as it leaves here (the HTML layer outside turns it into
    // the page): which one was asked for is part of the tag.
    let page = request.extensions().get::<html::Page>().is_some();
    let asked: Vec<String> = request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .collect();
    let mut response = next.run(request).await;
    response.headers_mut().append(header::VARY, HeaderValue::from_static("accept, authorization"));
    if response.status() != StatusCode::OK {
        return response;
    }
    // The body's hash, made with it (`ogc::json_response`), or the body read back and hashed here.
    let (mut parts, body, body_hash) = match response.extensions_mut().remove::<ogc::BodyHash>() {
        Some(hash) => {
            let (parts, body) = response.into_parts();
            (parts, body, hash)
        }
        None => {
            let size = axum::body::HttpBody::size_hint(response.body()).exact();
            if size.is_none_or(|n| n > TAGGED_BODY) {
                return response;
            }
            let (parts, body) = response.into_parts();
            // A body of known size is in memory already: collecting it copies nothing.
            let Ok(bytes) = axum::body::to_bytes(body, usize::try_from(TAGGED_BODY).unwrap_or(usize::MAX)).await else {
                return ogc::ApiError::internal(&"an answer could not be read back").into_response();
            };
            let hash = ogc::BodyHash::of(&bytes);
            (parts, axum::body::Body::from(bytes), hash)
        }
    };
    let media = parts.headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes);
    let hash = ogc::BodyHash::hasher().hash_one((body_hash.0, media, page));
    let tag = weak_tag(hash);
    let Ok(tag_value) = HeaderValue::from_str(&tag) else {
        return axum::response::Response::from_parts(parts, body);
    };
    parts.headers.insert(header::ETAG, tag_value);
    if asked.iter().any(|t| *t == tag || t == "*") {
        let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
        for name in [header::ETAG, header::VARY] {
            if let Some(v) = parts.headers.get(&name) {
                not_modified.headers_mut().insert(name, v.clone());
            }
        }
        // What the 200 would have disclosed stays on record: the caller learnt it is unchanged.
        *not_modified.extensions_mut() = parts.extensions;
        return not_modified;
    }
    axum::response::Response::from_parts(parts, body)
}

/// `W/"<16 hex digits>"`, without `fmt` (a request's worth of formatting cost more than the hash).
fn weak_tag(hash: u64) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut tag = String::with_capacity(20);
    tag.push_str("W/\"");
    for shift in (0..16).rev() {
        tag.push(char::from(DIGITS[((hash >> (shift * 4)) & 0xf) as usize]));
    }
    tag.push('"');
    tag
}

/// How long a request may take to produce its answer (a streamed export's body goes on after).
pub const REQUEST_BUDGET: Duration = Duration::from_secs(60);

/// The answer, or a 500 when making it panicked: a panic in a handler is that request's 500 (and
/// on record, as the gateway sees it), never the server's end. Caught in the gateway rather
/// than by a layer of its own: every route layer is one more boxed service cloned a request.
async fn caught(answer: impl Future<Output = axum::response::Response>) -> axum::response::Response {
    futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(answer)).await.unwrap_or_else(panicked)
}

/// The answer to a request whose handler panicked: a 500 for it alone.
fn panicked(detail: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let what = detail
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| detail.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    axum::response::IntoResponse::into_response(ogc::ApiError::internal(&format!("handler panicked: {what}")))
}

/// The largest body given an ETag: a page of parcels is a few megabytes at most.
const TAGGED_BODY: u64 = 32 << 20;

/// Keeps the engine current: waits for the store's feed to move (NOTIFY on PostGIS, polling on
/// the embedded store) and applies what was committed. Runs until the process ends.
pub async fn follow_feed(engine: Arc<Engine>, store: AnyStore) {
    let mut waiter = loop {
        match store.feed_waiter().await {
            Ok(w) => break w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen to the change feed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    loop {
        if let Err(e) = waiter.wait(Duration::from_millis(500)).await {
            tracing::warn!(error = %e, "waiting for the change feed failed");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        match engine.follow(&store).await {
            Ok(position) => tracing::trace!(position = position.0, "engine current"),
            Err(e) => tracing::warn!(error = %e, "cannot apply the change feed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    /// The request span is off under the default filter (`landdb=info` would otherwise take
    /// it in, by prefix), and on when `tower_http=info` asks for request lines.
    #[test]
    fn request_spans_are_on_only_when_tower_http_is() {
        let request = axum::http::Request::new(axum::body::Body::empty());
        for (filter, on) in [("warn,sqlx::query=error,landdb=info", false), ("warn,landdb=info,tower_http=info", true)]
        {
            let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::sink).finish();
            let span = tracing::subscriber::with_default(subscriber, || super::request_span(&request));
            assert_eq!(!span.is_disabled(), on, "{filter}");
        }
    }

    #[tokio::test]
    async fn a_panic_while_answering_is_a_500_for_that_request() {
        let answer = super::caught(async { panic!("out of bounds") }).await;
        assert_eq!(answer.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(answer.into_body(), 1 << 20).await.expect("the body");
        // The detail is for the log; the caller learns only that the server could not answer.
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("\"ServerError\"") && !body.contains("out of bounds"), "{body}");
        let fine = super::caught(async { axum::response::IntoResponse::into_response("fine") }).await;
        assert_eq!(fine.status(), axum::http::StatusCode::OK);
    }

    proptest! {
        #[test]
        fn weak_tags_spell_the_hash_in_sixteen_hex_digits(hash: u64) {
            prop_assert_eq!(super::weak_tag(hash), format!("W/\"{hash:016x}\""));
        }
    }
}
