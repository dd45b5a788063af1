//! What every OGC API answer shares: links, and exceptions in the OGC JSON form
//! (`{"code": …, "description": …}`), which say which parameter was wrong and why.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const GEOJSON: &str = "application/geo+json";
pub const JSON: &str = "application/json";
pub const OPENAPI: &str = "application/vnd.oai.openapi+json;version=3.0";
pub const CRS84: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";

/// The conformance classes this server implements.
pub const CONFORMANCE: &[&str] = &[
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
];

#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub href: String,
    pub rel: &'static str,
    #[serde(rename = "type")]
    pub media_type: &'static str,
    pub title: String,
}

impl Link {
    pub fn new(href: String, rel: &'static str, media_type: &'static str, title: impl Into<String>) -> Self {
        Link { href, rel, media_type, title: title.into() }
    }

    /// `links` as a JSON array, written by hand on the lookups' path (what serde writes, at a
    /// fraction of its cost: see `written_links_read_as_serialised`).
    pub fn write_all(out: &mut Vec<u8>, links: &[Link]) {
        use crate::answer::features::json_string;
        out.push(b'[');
        for (i, link) in links.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"href\":");
            json_string(out, &link.href);
            out.extend_from_slice(b",\"rel\":");
            json_string(out, link.rel);
            out.extend_from_slice(b",\"type\":");
            json_string(out, link.media_type);
            out.extend_from_slice(b",\"title\":");
            json_string(out, &link.title);
            out.push(b'}');
        }
        out.push(b']');
    }
}

/// The most bytes of `Link` headers an answer carries: a long filter repeated in self, next and
/// prev could otherwise pass what proxies take in headers (nginx's default is 4–8 KB). Links
/// past it are in the body only.
const LINK_HEADER_BUDGET: usize = 6 * 1024;

/// A link of an answer, as [`publish_links`] reads and completes it: the typed [`Link`] the
/// feature writers make, or a link inside a JSON document ([`linked_json`]).
pub trait AnswerLink: Sized {
    fn href(&self) -> Option<&str>;
    fn rel(&self) -> Option<&str>;
    fn media_type(&self) -> Option<&str>;
    /// The `alternate` link to the answer's HTML page at `href`.
    fn html_alternate(href: String) -> Self;
}

impl AnswerLink for Link {
    fn href(&self) -> Option<&str> {
        Some(&self.href)
    }
    fn rel(&self) -> Option<&str> {
        Some(self.rel)
    }
    fn media_type(&self) -> Option<&str> {
        Some(self.media_type)
    }
    fn html_alternate(href: String) -> Self {
        Link::new(href, "alternate", "text/html", HTML_ALTERNATE_TITLE)
    }
}

impl AnswerLink for serde_json::Value {
    fn href(&self) -> Option<&str> {
        self["href"].as_str()
    }
    fn rel(&self) -> Option<&str> {
        self["rel"].as_str()
    }
    fn media_type(&self) -> Option<&str> {
        self["type"].as_str()
    }
    fn html_alternate(href: String) -> Self {
        serde_json::json!({ "href": href, "rel": "alternate", "type": "text/html", "title": HTML_ALTERNATE_TITLE })
    }
}

const HTML_ALTERNATE_TITLE: &str = "this document as HTML";

/// Completes an answer's links and publishes them, the one place every JSON answer's links pass:
/// the answer's HTML page is added beside `self` as `alternate` (the HTML layer renders every
/// JSON answer, OGC API – Features `/req/html`), and every link goes into a `Link` header as well
/// (RFC 8288: `<href>; rel="…"; type="…"`, titles left out), so that a client reading headers
/// finds what the body says. On every lookup's path: plain string work, no URL parsing.
pub fn publish_links<L: AnswerLink>(links: &mut Vec<L>, headers: &mut axum::http::HeaderMap) {
    let has_html = links.iter().any(|l| l.rel() == Some("alternate") && l.media_type() == Some("text/html"));
    if !has_html
        && let Some(i) = links.iter().position(|l| l.rel() == Some("self"))
        && let Some(href) = links[i].href().and_then(html_page)
    {
        links.insert(i + 1, L::html_alternate(href));
    }
    let mut spent = 0;
    for link in links.iter() {
        let (Some(href), Some(rel)) = (link.href(), link.rel()) else { continue };
        let media = link.media_type();
        let mut value = String::with_capacity(href.len() + rel.len() + media.map_or(0, str::len) + 20);
        value.push('<');
        value.push_str(href);
        value.push_str(">; rel=\"");
        value.push_str(rel);
        value.push('"');
        if let Some(media) = media {
            value.push_str("; type=\"");
            value.push_str(media);
            value.push('"');
        }
        if spent + value.len() > LINK_HEADER_BUDGET {
            continue;
        }
        // A href that is not visible ASCII (a Host header the server was reached by) stays in
        // the body only.
        if let Ok(v) = HeaderValue::try_from(value) {
            spent += v.len();
            headers.append(header::LINK, v);
        }
    }
}

/// The address of the HTML page of the answer at `href`: the same query, its `f` left out,
/// with `f=html`. The pairs are kept as they were encoded.
fn html_page(href: &str) -> Option<String> {
    let (address, query) = href.split_once('?').unwrap_or((href, ""));
    if address.is_empty() {
        return None;
    }
    let mut page = String::with_capacity(href.len() + 8);
    page.push_str(address);
    page.push('?');
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        if name != "f" {
            page.push_str(pair);
            page.push('&');
        }
    }
    page.push_str("f=html");
    Some(page)
}

/// An error answer. The description names the parameter or resource and what to change.
#[derive(Debug, thiserror::Error)]
#[error("{description}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: String,
    /// For a 429: when to come back.
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    /// 400: a parameter the endpoint does not know, or a value it cannot take.
    pub fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        ApiError { status, code, description: description.into(), retry_after: None }
    }

    pub fn bad_parameter(description: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "InvalidParameterValue",
            description: description.into(),
            retry_after: None,
        }
    }

    pub fn forbidden(description: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "Forbidden",
            description: description.into(),
            retry_after: None,
        }
    }

    pub fn not_found(description: impl Into<String>) -> Self {
        ApiError { status: StatusCode::NOT_FOUND, code: "NotFound", description: description.into(), retry_after: None }
    }

    /// 500: the store failed; the detail goes to the log, not to the caller.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "ServerError",
            description: "the server could not answer; the operators have the details in its log".into(),
            retry_after: None,
        }
    }

    /// A store failure: 503 while the store is unavailable (the answer says so, and to try again),
    /// otherwise a 500; the detail goes to the log, not to the caller.
    pub fn store(error: &landdb_store::StoreError) -> Self {
        if !error.is_unavailable() {
            return Self::internal(error);
        }
        tracing::warn!(%error, "the store is unavailable");
        Self::store_unavailable()
    }

    /// 503: the store does not answer at the moment.
    pub fn store_unavailable() -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "StoreUnavailable",
            description: "the database is unavailable at the moment: try again shortly (/health says when it is back)"
                .into(),
            retry_after: Some(std::time::Duration::from_secs(5)),
        }
    }

    /// 503: the audit log cannot take the request's entry (the primary away and the spool not
    /// writable): nothing is answered unaudited.
    pub fn audit_unavailable() -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "AuditUnavailable",
            description:
                "the audit log cannot record this request at the moment, so it is not answered: try again shortly"
                    .into(),
            retry_after: Some(std::time::Duration::from_secs(5)),
        }
    }

    /// 429: a rate or quota reached; `wait` until it allows again (the `Retry-After` header).
    pub fn too_many(description: impl Into<String>, wait: std::time::Duration) -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "TooManyRequests",
            description: description.into(),
            retry_after: Some(wait),
        }
    }
}

impl ApiError {
    /// The JSON an answer carries: what went wrong, for the client.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.code, "description": self.description })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json_response(self.status, JSON, self.body().to_string());
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

/// A JSON document with links, as an answer: its links completed and in `Link` headers too
/// ([`publish_links`]).
pub fn linked_json(status: StatusCode, media_type: &'static str, mut body: serde_json::Value) -> Response {
    let mut headers = axum::http::HeaderMap::new();
    if let Some(links) = body.get_mut("links").and_then(serde_json::Value::as_array_mut) {
        publish_links(links, &mut headers);
    }
    let mut response = json_response(status, media_type, body.to_string());
    response.headers_mut().extend(headers);
    response
}

/// A JSON body with its media type, and the body's hash for its ETag ([`BodyHash`]).
pub fn json_response(status: StatusCode, media_type: &'static str, body: impl Into<axum::body::Bytes>) -> Response {
    let body = body.into();
    let hash = BodyHash::of(&body);
    let mut response = (status, axum::body::Body::from(body)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    response.extensions_mut().insert(hash);
    response
}

/// A body that is not in memory (a stream, or none for HEAD) with its media type: no ETag.
pub fn streamed_response(status: StatusCode, media_type: &'static str, body: axum::body::Body) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    response
}

/// The hash of a response's body, taken where the body was made, so that the ETag layer need not
/// collect the body again to hash it. A layer that changes a body must remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyHash(pub u64);

impl BodyHash {
    pub fn of(body: &[u8]) -> BodyHash {
        use std::hash::BuildHasher;
        BodyHash(BodyHash::hasher().hash_one(body))
    }

    /// What bodies and tags are hashed with: foldhash, not SipHash (every answer is hashed; a
    /// point lookup's 2 KB took SipHash about a microsecond, a few per cent of the request), with
    /// a fixed seed so that tags stay the same across restarts.
    pub fn hasher() -> foldhash::quality::FixedState {
        foldhash::quality::FixedState::with_seed(0x6c61_6e64_6462)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_html_page_is_the_same_query_with_f_html() {
        assert_eq!(html_page("http://h/collections").as_deref(), Some("http://h/collections?f=html"));
        assert_eq!(
            html_page("http://h/items?limit=10&f=json&filter=a%3D1&ff=2").as_deref(),
            Some("http://h/items?limit=10&filter=a%3D1&ff=2&f=html")
        );
        assert_eq!(html_page("http://h/items?f=json").as_deref(), Some("http://h/items?f=html"));
        assert_eq!(html_page("?x=1"), None);
    }

    #[test]
    fn written_links_read_as_serialised() {
        let links = vec![
            Link::new("http://h/a?q=\"x\"\\&f=1".to_owned(), "self", "application/geo+json", "quote \" and \n"),
            Link::new("http://h/ả".to_owned(), "alternate", "text/html", "thửa đất\u{1}"),
        ];
        let mut out = Vec::new();
        Link::write_all(&mut out, &links);
        let read: serde_json::Value = serde_json::from_slice(&out).expect("the links are JSON");
        assert_eq!(read, serde_json::to_value(&links).expect("links serialise"));
        let mut none = Vec::new();
        Link::write_all(&mut none, &[]);
        assert_eq!(none, b"[]");
    }

    /// The typed links of the feature writers and the links of a JSON document are published
    /// alike: the same body links and the same headers.
    #[test]
    fn typed_and_json_links_are_published_alike() {
        let typed = vec![
            Link::new("http://h/c/items?limit=2&f=json".to_owned(), "self", "application/geo+json", "this page"),
            Link::new("http://h/c".to_owned(), "collection", "application/json", "the collection"),
        ];
        let mut json: Vec<serde_json::Value> =
            typed.iter().map(|l| serde_json::to_value(l).expect("links serialise")).collect();
        let mut typed = typed;
        let (mut a, mut b) = (axum::http::HeaderMap::new(), axum::http::HeaderMap::new());
        publish_links(&mut typed, &mut a);
        publish_links(&mut json, &mut b);
        assert_eq!(serde_json::to_value(&typed).expect("links serialise"), serde_json::Value::Array(json));
        assert_eq!(a, b);
        let headers: Vec<&str> = a.get_all(header::LINK).iter().map(|v| v.to_str().expect("ASCII headers")).collect();
        assert_eq!(
            headers,
            [
                "<http://h/c/items?limit=2&f=json>; rel=\"self\"; type=\"application/geo+json\"",
                "<http://h/c/items?limit=2&f=html>; rel=\"alternate\"; type=\"text/html\"",
                "<http://h/c>; rel=\"collection\"; type=\"application/json\"",
            ]
        );
        // Published twice, the alternate is not added again.
        publish_links(&mut typed, &mut axum::http::HeaderMap::new());
        assert_eq!(typed.len(), 3);
    }
}
