//! The pages people open in a browser: the parcel map (`/map`), the upload page for province
//! staff (`/upload`), and an HTML landing page. Everything they load is compiled into the binary
//! and served from `/assets/…` (MapLibre GL JS included): government networks are closed, so
//! nothing may come from a CDN.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::ogc::ApiError;

/// The static files, by name: (content, media type).
const ASSETS: &[(&str, &[u8], &str)] = &[
    ("maplibre-gl.js", include_bytes!("../assets/maplibre-gl.js"), "text/javascript; charset=utf-8"),
    ("maplibre-gl.css", include_bytes!("../assets/maplibre-gl.css"), "text/css; charset=utf-8"),
    ("MAPLIBRE-LICENSE.txt", include_bytes!("../assets/MAPLIBRE-LICENSE.txt"), "text/plain; charset=utf-8"),
    ("common.js", include_bytes!("../assets/common.js"), "text/javascript; charset=utf-8"),
    ("map.js", include_bytes!("../assets/map.js"), "text/javascript; charset=utf-8"),
    ("upload.js", include_bytes!("../assets/upload.js"), "text/javascript; charset=utf-8"),
    ("landing.js", include_bytes!("../assets/landing.js"), "text/javascript; charset=utf-8"),
    ("landdb.css", include_bytes!("../assets/landdb.css"), "text/css; charset=utf-8"),
];

const MAP: &str = include_str!("../assets/map.html");
const UPLOAD: &str = include_str!("../assets/upload.html");

fn html(body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    // MapLibre starts its worker from a blob: URL and its stylesheet has data: images.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; worker-src blob:; child-src blob:; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'",
        ),
    );
    response
}

pub async fn map() -> Response {
    html(MAP)
}

pub async fn upload() -> Response {
    html(UPLOAD)
}

pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (_, content, media) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| ApiError::not_found(format!("there is no asset `{name}`")))?;
    let mut response = (StatusCode::OK, *content).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    // Assets change only with the binary: a day in caches is safe, and the ETag covers the rest.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    Ok(response)
}

/// The landing page for a person: what the store holds for the key the browser keeps (figures
/// filled in by `landing.js` from `/collections`: the page itself is public and names no
/// figure), and where everything is. Readable on a phone.
pub fn landing_html(base: &str) -> Response {
    let body = format!(
        r#"<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>landdb</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/assets/landdb.css"></head>
<body class="landing">
<header class="top">
<h1>landdb — Cơ sở dữ liệu đất đai quốc gia (national land database)</h1>
<nav><a href="{base}/map">Bản đồ (map)</a><a href="{base}/upload">Tải lên (upload)</a></nav>
<label class="key">Khóa API (API key)
<input id="api-key" type="password" autocomplete="off" spellcheck="false" placeholder="—"></label>
</header>
<main class="page">
<h2>Dữ liệu (what the store holds for your key)</h2>
<p id="holdings-status" class="muted"></p>
<section id="holdings"></section>
<h2>Cho lập trình viên (for developers)</h2>
<ul>
<li><a href="{base}/collections?f=html">Collections (OGC API – Features)</a></li>
<li><a href="{base}/api">API definition (OpenAPI 3.0)</a></li>
<li><a href="{base}/conformance?f=html">Conformance classes</a></li>
</ul>
</main>
<script src="/assets/common.js"></script><script src="/assets/landing.js"></script>
</body></html>"#
    );
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}
