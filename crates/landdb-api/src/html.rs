//! HTML for people (OGC API – Features, the HTML conformance class): every JSON answer of the
//! API, asked for by a browser (`Accept: text/html`) or with `f=html`, comes back as a page — its
//! links as links, collections and features as tables, a feature with a link to the map. The
//! handlers answer JSON only; this layer turns their answer into a page, so the two never differ.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Answers bigger than this stay JSON (an export, a page of ten thousand parcels).
const MAX_PAGE_BYTES: usize = 8 << 20;

/// Whether the request asks for HTML: `f=html`, or a browser's `Accept` without any `f`.
pub fn wants_html(request: &Request) -> bool {
    if request.extensions().get::<Page>().is_some() {
        return true;
    }
    let f = format_parameter(request.uri().query().unwrap_or_default());
    match f.as_deref() {
        Some("html") => true,
        Some(_) => false,
        None => request.headers().get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(prefers_html),
    }
}

/// The `f` parameter of a query, decoded. Only the pairs whose name is `f` or is encoded are
/// decoded: every request passes here, and most name no format (a point lookup's coordinates
/// need no decoding to be passed over).
fn format_parameter(query: &str) -> Option<std::borrow::Cow<'_, str>> {
    query.split('&').find_map(|pair| {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        if name != "f" && !name.contains(['%', '+']) {
            return None;
        }
        let (name, value) = url::form_urlencoded::parse(pair.as_bytes()).next()?;
        (name == "f").then_some(value)
    })
}

/// Whether an `Accept` header prefers HTML to JSON (RFC 9110 quality values): a browser's
/// `text/html,…,*/*;q=0.8` does; `application/geo+json, text/html;q=0.1` does not; a tie goes
/// to JSON, the API's own form.
pub fn prefers_html(accept: &str) -> bool {
    // Most callers (scripts, GIS clients, `*/*`) name no HTML at all: asked on every request.
    if !accept.as_bytes().windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")) {
        return false;
    }
    let quality = |wanted: &[&str]| -> f32 {
        accept
            .split(',')
            .filter_map(|range| {
                let mut parts = range.split(';');
                let media = parts.next()?.trim();
                let q = parts
                    .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                    .unwrap_or(1.0);
                wanted.iter().any(|w| media.eq_ignore_ascii_case(w)).then_some(q)
            })
            .fold(0.0, f32::max)
    };
    let html = quality(&["text/html"]);
    html > 0.0 && html > quality(&["application/json", "application/geo+json", "application/*", "*/*"])
}

/// The middleware: takes `f=html` off the query (the handlers answer JSON), and turns a JSON
/// answer into a page.
pub async fn pages(mut request: Request, next: Next) -> Response {
    if !wants_html(&request) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    // Layers further in (the ETag) still know a page was asked for once `f=html` is gone.
    request.extensions_mut().insert(Page);
    if let Some(query) = request.uri().query() {
        let kept: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .filter(|(k, v)| !(k == "f" && v == "html"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut rebuilt = path.clone();
        if !kept.is_empty() {
            rebuilt.push('?');
            rebuilt.push_str(&url::form_urlencoded::Serializer::new(String::new()).extend_pairs(kept).finish());
        }
        if let Ok(uri) = rebuilt.parse() {
            *request.uri_mut() = uri;
        }
    }
    let response = next.run(request).await;
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("application/geo+json"));
    if !json || response.headers().contains_key(header::CONTENT_DISPOSITION) {
        return response;
    }
    let status = response.status();
    let kept: Vec<(header::HeaderName, HeaderValue)> = [header::ETAG, header::VARY]
        .into_iter()
        .flat_map(|name| {
            response.headers().get_all(&name).iter().map(move |v| (name.clone(), v.clone())).collect::<Vec<_>>()
        })
        .collect();
    let Ok(bytes) = axum::body::to_bytes(response.into_body(), MAX_PAGE_BYTES).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the answer is too large for a page; ask for f=json")
            .into_response();
    };
    let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
        return (status, Body::from(bytes)).into_response();
    };
    let mut page = (status, render(&path, &doc)).into_response();
    page.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    for (name, value) in kept {
        page.headers_mut().append(name, value);
    }
    page
}

/// Marks a request whose answer becomes a page.
#[derive(Debug, Clone, Copy)]
pub struct Page;

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => escape(s),
        Value::Null => String::new(),
        other => escape(&other.to_string()),
    }
}

/// The page of a JSON document.
pub fn render(path: &str, doc: &Value) -> String {
    let title = doc["title"].as_str().or(doc["id"].as_str()).unwrap_or(path);
    let mut body = format!("<h1>{}</h1>\n", escape(title));
    if let Some(d) = doc["description"].as_str() {
        body.push_str(&format!("<p>{}</p>\n", escape(d)));
    }
    if let Some(e) = doc["code"].as_str() {
        body.push_str(&format!("<p class=\"error\">{}: {}</p>\n", escape(e), cell(&doc["description"])));
    }
    if let Some(classes) = doc["conformsTo"].as_array() {
        body.push_str("<ul>\n");
        for c in classes {
            body.push_str(&format!("<li>{}</li>\n", cell(c)));
        }
        body.push_str("</ul>\n");
    }
    if let Some(collections) = doc["collections"].as_array() {
        body.push_str("<table class=\"props\"><tr><th>collection</th><th>title</th><th>description</th></tr>\n");
        for c in collections {
            let id = cell(&c["id"]);
            body.push_str(&format!(
                "<tr><td><a href=\"/collections/{id}\">{id}</a></td><td>{}</td><td>{}</td></tr>\n",
                cell(&c["title"]),
                cell(&c["description"])
            ));
        }
        body.push_str("</table>\n");
    }
    if doc["type"] == "FeatureCollection" {
        let collection = path.trim_end_matches("/items").trim_end_matches('/');
        body.push_str(&format!(
            "<p>{} features{}</p>\n",
            cell(&doc["numberReturned"]),
            doc["numberMatched"].as_u64().map_or(String::new(), |n| format!(" of {n}"))
        ));
        let features = doc["features"].as_array().cloned().unwrap_or_default();
        let mut columns: Vec<String> = Vec::new();
        for f in &features {
            for k in f["properties"].as_object().into_iter().flat_map(|p| p.keys()) {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
        body.push_str("<table class=\"props\"><tr><th>id</th>");
        for c in &columns {
            body.push_str(&format!("<th>{}</th>", escape(c)));
        }
        body.push_str("</tr>\n");
        for f in &features {
            let id = cell(&f["id"]);
            let href = if collection.starts_with("/collections/") {
                format!("{collection}/items/{id}")
            } else {
                format!("/collections/parcels/items/{id}")
            };
            body.push_str(&format!("<tr><td><a href=\"{}\">{id}</a></td>", escape(&href)));
            for c in &columns {
                body.push_str(&format!("<td>{}</td>", cell(&f["properties"][c])));
            }
            body.push_str("</tr>\n");
        }
        body.push_str("</table>\n");
    } else if doc["type"] == "Feature" {
        body.push_str("<table class=\"props\">\n");
        body.push_str(&format!("<tr><th>id</th><td>{}</td></tr>\n", cell(&doc["id"])));
        for (k, v) in doc["properties"].as_object().into_iter().flatten() {
            body.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>\n", escape(k), cell(v)));
        }
        body.push_str("</table>\n");
        let mut c = &doc["geometry"]["coordinates"];
        while c.as_array().is_some_and(|a| a.first().is_some_and(Value::is_array)) {
            c = &c[0];
        }
        if let (Some(lon), Some(lat)) = (c[0].as_f64(), c[1].as_f64()) {
            body.push_str(&format!("<p><a href=\"/map#18/{lat}/{lon}\">Xem trên bản đồ (show on the map)</a></p>\n"));
        }
    } else if doc["collections"].is_null() && doc["conformsTo"].is_null() && doc["code"].is_null() {
        let pretty = serde_json::to_string_pretty(doc).unwrap_or_default();
        body.push_str(&format!("<pre>{}</pre>\n", escape(&pretty)));
    }
    if let Some(links) = doc["links"].as_array() {
        body.push_str("<h2>Links</h2>\n<ul>\n");
        for l in links {
            body.push_str(&format!(
                "<li><a href=\"{}\">{}</a> ({}, {})</li>\n",
                cell(&l["href"]),
                cell(&l["title"]),
                cell(&l["rel"]),
                cell(&l["type"])
            ));
        }
        body.push_str("</ul>\n");
    }
    format!(
        "<!doctype html>\n<html lang=\"vi\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} — landdb</title>\n\
         <link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/assets/landdb.css\"></head>\n\
         <body class=\"landing\"><main>\n<p><a href=\"/\">landdb</a> · <a href=\"/collections\">collections</a> · \
         <a href=\"/map\">bản đồ (map)</a> · <a href=\"/upload\">tải lên (upload)</a> · <a href=\"{}?f=json\">JSON</a></p>\n{body}</main></body></html>\n",
        escape(title),
        escape(path)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The shortcut reads `f` as a full decoding of the query would, whatever the encoding.
        #[test]
        fn the_format_parameter_is_read_as_decoded(query in "[fgFh=&%6+2xtml0-9]{0,24}") {
            let full = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "f").map(|(_, v)| v);
            prop_assert_eq!(format_parameter(&query), full);
        }
    }

    #[test]
    fn an_encoded_format_parameter_is_found() {
        assert_eq!(format_parameter("lon=1&%66=html").as_deref(), Some("html"));
        assert_eq!(format_parameter("lon=1&f=json&f=html").as_deref(), Some("json"));
        assert_eq!(format_parameter("lon=1&ff=html"), None);
    }

    #[test]
    fn quality_values_decide_between_a_page_and_json() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";
        assert!(prefers_html(browser));
        assert!(prefers_html("TEXT/HTML"));
        assert!(prefers_html("text/html"));
        for json in [
            "application/geo+json, text/html;q=0.1",
            "application/json",
            "*/*",
            "text/html;q=0.5, application/json;q=0.5",
            "text/html;q=0",
            "",
        ] {
            assert!(!prefers_html(json), "{json}");
        }
    }

    #[test]
    fn pages_escape_what_they_show() {
        let doc = serde_json::json!({
            "type": "FeatureCollection", "numberReturned": 1,
            "features": [{ "type": "Feature", "id": 7, "properties": { "address": "<script>alert(1)</script> & Hải Châu" } }],
            "links": [{ "href": "/x?a=1&b=2", "rel": "self", "type": "application/geo+json", "title": "this \"page\"" }],
        });
        let page = render("/collections/parcels/items", &doc);
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Hải Châu"));
        assert!(page.contains("href=\"/collections/parcels/items/7\""));
        assert!(page.contains("href=\"/x?a=1&amp;b=2\""));
    }
}
