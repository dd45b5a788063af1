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
}

/// The most bytes of `Link` headers an answer carries: a long filter repeated in self, next and
/// prev could otherwise pass what proxies take in headers (nginx's default is 4–8 KB). Links
/// past it are in the body only.
const LINK_HEADER_BUDGET: usize = 6 * 1024;

/// Completes an answer's links and publishes them, the one place every JSON answer's links pass:
/// the answer's HTML page is added beside `self` as `alternate` (the HTML layer renders every
/// JSON answer, OGC API – Features `/req/html`), and every link goes into a `Link` header as well
/// (RFC 8288: `<href>; rel="…"; type="…"`, titles left out), so that a client reading headers
/// finds what the body says.
pub fn publish_links(links: &mut Vec<serde_json::Value>, headers: &mut axum::http::HeaderMap) {
    let has = |links: &[serde_json::Value], rel: &str, media: &str| {
        links.iter().any(|l| l["rel"] == rel && l["type"] == media)
    };
    let page = links
        .iter()
        .position(|l| l["rel"] == "self")
        .filter(|_| !has(links, "alternate", "text/html"))
        .and_then(|i| Some((i, html_page(links[i]["href"].as_str()?)?)));
    if let Some((i, href)) = page {
        let title = "this document as HTML";
        links.insert(
            i + 1,
            serde_json::json!({ "href": href, "rel": "alternate", "type": "text/html", "title": title }),
        );
    }
    let mut spent = 0;
    for link in links.iter() {
        let (Some(href), Some(rel)) = (link["href"].as_str(), link["rel"].as_str()) else { continue };
        let mut value = format!("<{href}>; rel=\"{rel}\"");
        if let Some(media) = link["type"].as_str() {
            value.push_str(&format!("; type=\"{media}\""));
        }
        if spent + value.len() > LINK_HEADER_BUDGET {
            continue;
        }
        // A href that is not visible ASCII (a Host header the server was reached by) stays in
        // the body only.
        if let Ok(v) = HeaderValue::from_str(&value) {
            spent += value.len();
            headers.append(header::LINK, v);
        }
    }
}

/// The address of the HTML page of the answer at `href`: the same query with `f=html`.
fn html_page(href: &str) -> Option<String> {
    let mut url = url::Url::parse(href).ok()?;
    let kept: Vec<(String, String)> =
        url.query_pairs().filter(|(k, _)| k != "f").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    url.query_pairs_mut().clear().extend_pairs(kept).append_pair("f", "html");
    Some(url.into())
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.code, "description": self.description });
        let mut response = json_response(self.status, JSON, body.to_string());
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

/// A JSON body with its media type.
pub fn json_response(status: StatusCode, media_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    let mut response = (status, body.into()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    response
}
