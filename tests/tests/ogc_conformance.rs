//! OGC API – Features (Parts 1, 2 and 3) as the independent test suites check it, walked
//! generically: every items path of the OpenAPI document and every collection `/collections`
//! lists, so that a collection added later is held to the same rules. Each answer's links are in
//! its body and, the same, in its `Link` headers (RFC 8288), which Part 3 clients read.

use std::collections::BTreeSet;

use landdb_tests::http::{client, samples, server};
use serde_json::Value;

/// A link as `(rel, type, href)`.
type Triple = (String, String, String);

/// An answer: status, media type, `Link` headers, body.
struct Answer {
    status: u16,
    media: String,
    headers: BTreeSet<Triple>,
    body: Value,
}

async fn ask(url: &str) -> Answer {
    let response = client().get(url).send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let media = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let headers = link_headers(response.headers());
    let body = response.json().await.unwrap_or(Value::Null);
    Answer { status, media, headers, body }
}

/// `Link` headers, each `<href>; rel="…"; type="…"`. Read as the Part 3 suite reads those of
/// items pages (split on `,`, then `;`, then `=`), quoted values aside: a media type such as the
/// OpenAPI one holds `;` and `=` inside its quotes.
fn link_headers(headers: &reqwest::header::HeaderMap) -> BTreeSet<Triple> {
    let mut out = BTreeSet::new();
    for value in headers.get_all("link") {
        let text = value.to_str().expect("a Link header of visible ASCII");
        for link in text.split(',') {
            let (href, rest) = link.split_once(';').expect("href; parameters");
            let href = href.trim().trim_start_matches('<').trim_end_matches('>').to_owned();
            let (mut rel, mut media) = (String::new(), String::new());
            for part in unquoted_split(rest) {
                let (k, v) = part.split_once('=').expect("name=value");
                let quoted = v.trim().starts_with('"');
                assert!(quoted || !v.contains('='), "an unquoted value with `=`: {text}");
                let v = v.trim().trim_matches('"').to_owned();
                match k.trim() {
                    "rel" => rel = v,
                    "type" => media = v,
                    other => panic!("an unexpected link parameter {other} in {text}"),
                }
            }
            out.insert((rel, media, href));
        }
    }
    out
}

/// `text` split at each `;` outside double quotes.
fn unquoted_split(text: &str) -> Vec<&str> {
    let (mut parts, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// The body's links as triples.
fn body_links(doc: &Value) -> BTreeSet<Triple> {
    doc["links"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap_or_default().to_owned();
            (s("rel"), s("type"), s("href"))
        })
        .collect()
}

fn href<'a>(doc: &'a Value, rel: &str, media: &str) -> Option<&'a str> {
    doc["links"].as_array()?.iter().find(|l| l["rel"] == rel && l["type"] == media)?["href"].as_str()
}

/// Every link of the body has a rel and a type, the body has `self` and its HTML page as
/// `alternate`, and the `Link` headers are the body's links.
fn linked(url: &str, a: &Answer, media: &str) {
    assert_eq!(a.status, 200, "{url}: {}", a.body);
    assert_eq!(a.media, media, "{url}");
    let links = body_links(&a.body);
    assert!(
        links.iter().all(|(rel, t, h)| !rel.is_empty() && !t.is_empty() && h.starts_with("http")),
        "{url}: {links:?}"
    );
    assert!(href(&a.body, "self", media).is_some(), "{url}: no self of type {media}: {links:?}");
    assert!(href(&a.body, "alternate", "text/html").is_some_and(|h| h.contains("f=html")), "{url}: {links:?}");
    assert_eq!(a.headers, links, "{url}: the Link headers are the body's links");
}

/// The OpenAPI parameter `name` of the GET at `path` (path-level or operation-level).
fn parameter<'a>(api: &'a Value, path: &str, name: &str) -> &'a Value {
    let item = &api["paths"][path];
    item["parameters"]
        .as_array()
        .into_iter()
        .chain(item["get"]["parameters"].as_array())
        .flatten()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{path} does not declare {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_collection_meets_ogc_api_features_core_crs_and_filtering() {
    let s = server(&[samples()]).await;
    let base = &s.base;

    // The landing page, conformance and the collections: linked, in headers too.
    let landing = ask(&format!("{base}/")).await;
    linked("/", &landing, "application/json");
    for rel in ["service-desc", "conformance", "data"] {
        assert!(landing.body["links"].as_array().expect("links").iter().any(|l| l["rel"] == rel), "{rel}");
    }
    let conformance = ask(&format!("{base}/conformance")).await;
    linked("/conformance", &conformance, "application/json");

    // The OpenAPI document, as the Core suite reads it: on every items path, limit, bbox and
    // datetime are query parameters of form style, not exploded; limit an integer with a minimum
    // and a maximum; bbox an array of four to six numbers; datetime a string.
    let api = ask(&format!("{base}/api")).await.body;
    let items_paths: Vec<&String> = api["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .filter(|p| p.starts_with("/collections/") && p.ends_with("/items"))
        .collect();
    assert!(items_paths.len() >= 3, "{items_paths:?}");
    let mut maximum = 0;
    for path in &items_paths {
        for name in ["limit", "bbox", "datetime"] {
            let p = parameter(&api, path, name);
            assert_eq!((p["in"].as_str(), p["style"].as_str()), (Some("query"), Some("form")), "{path} {name}");
            assert_ne!(p["explode"], true, "{path} {name}");
            assert_ne!(p["required"], true, "{path} {name}");
        }
        let limit = &parameter(&api, path, "limit")["schema"];
        assert_eq!(limit["type"], "integer", "{path}");
        assert!(limit["minimum"].as_u64().is_some() && limit["default"].as_u64().is_some(), "{path}: {limit}");
        maximum = limit["maximum"].as_u64().expect("a maximum");
        let bbox = &parameter(&api, path, "bbox")["schema"];
        assert_eq!((bbox["type"].as_str(), bbox["items"]["type"].as_str()), (Some("array"), Some("number")));
        assert_eq!((bbox["minItems"].as_u64(), bbox["maxItems"].as_u64()), (Some(4), Some(6)), "{path}");
        assert_eq!(parameter(&api, path, "datetime")["schema"]["type"], "string", "{path}");
    }

    let collections = ask(&format!("{base}/collections")).await;
    linked("/collections", &collections, "application/json");
    let list = collections.body["collections"].as_array().expect("collections").clone();
    assert!(list.len() >= 3);
    for entry in &list {
        let id = entry["id"].as_str().expect("id");
        let what = |w: &str| format!("collection {id}: {w}");
        assert!(
            body_links(entry).iter().all(|(rel, t, h)| !rel.is_empty() && !t.is_empty() && !h.is_empty()),
            "{}",
            what("every link has rel and type")
        );
        // The collection alone is the entry of the list.
        let one = ask(&format!("{base}/collections/{id}")).await;
        linked(&what("metadata"), &one, "application/json");
        for key in ["id", "title", "description", "extent"] {
            assert_eq!(one.body[key], entry[key], "{}", what(key));
        }
        if let Some(crs) = entry["crs"].as_array() {
            assert!(crs.iter().any(|c| c == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"), "{}", what("CRS84"));
            assert!(crs.contains(&entry["storageCrs"]), "{}", what("storageCrs in crs"));
        }

        // Items: linked, counted, and every page reachable from `next` with the largest limit
        // the document allows (the Core suite replaces `limit` when it follows them).
        let items_url = href(entry, "items", "application/geo+json").expect("items link").to_owned();
        let page = ask(&format!("{items_url}?limit=2")).await;
        linked(&what("items"), &page, "application/geo+json");
        assert!(href(&page.body, "collection", "application/json").is_some(), "{}", what("collection link"));
        let features = page.body["features"].as_array().expect("features").clone();
        assert_eq!(page.body["numberReturned"].as_u64(), Some(features.len() as u64), "{}", what("numberReturned"));
        let matched = page.body["numberMatched"].as_u64().expect("numberMatched");
        if matched <= 10_000 && matched > 2 {
            let mut seen = features.len() as u64;
            let mut next = href(&page.body, "next", "application/geo+json").map(str::to_owned);
            while let Some(url) = next {
                let mut u = url::Url::parse(&url).expect("next url");
                let kept: Vec<(String, String)> =
                    u.query_pairs().filter(|(k, _)| k != "limit").map(|(k, v)| (k.into(), v.into())).collect();
                u.query_pairs_mut().clear().extend_pairs(kept).append_pair("limit", &maximum.to_string());
                let more = ask(u.as_str()).await;
                assert_eq!(more.status, 200, "{}: {u}: {}", what("next with another limit"), more.body);
                seen += more.body["numberReturned"].as_u64().expect("numberReturned");
                next = href(&more.body, "next", "application/geo+json").map(str::to_owned);
            }
            assert_eq!(seen, matched, "{}", what("the pages hold numberMatched features"));
        }

        // Boxes (one across the antimeridian, one with heights) and times: 200 wherever they fall.
        for bbox in ["177,65,-177,70", "-180,85,180,90", "-1.5,50,1.5,53", "100,5,115,25", "100,5,-10,115,25,100"] {
            let a = ask(&format!("{items_url}?bbox={bbox}")).await;
            assert_eq!(a.status, 200, "{}: {}", what(&format!("bbox={bbox}")), a.body);
            let n = a.body["numberReturned"].as_u64().expect("numberReturned");
            if bbox.starts_with("177") || bbox.starts_with("-180") || bbox.starts_with("-1.5") {
                assert_eq!(n, 0, "{}", what(&format!("nothing of Vietnam lies in {bbox}")));
            }
        }
        for datetime in ["2020-01-01T00:00:00Z", "2020-01-01/..", "../2030-01-01", "2019-01-01/2030-01-01"] {
            let a = ask(&format!("{items_url}?datetime={datetime}&limit=1")).await;
            assert_eq!(a.status, 200, "{}: {}", what(&format!("datetime={datetime}")), a.body);
        }

        // A feature: linked to itself, its page and its collection.
        if let Some(first) = features.first() {
            let fid = match &first["id"] {
                Value::String(s) => url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>(),
                other => other.to_string(),
            };
            let feature = ask(&format!("{base}/collections/{id}/items/{fid}")).await;
            linked(&what("a feature"), &feature, "application/geo+json");
            assert!(href(&feature.body, "collection", "application/json").is_some(), "{}", what("feature collection"));
            // Part 2: the feature and the items in every CRS the collection lists, each saying
            // which in Content-Crs.
            for crs in entry["crs"].as_array().into_iter().flatten().take(20) {
                let crs = crs.as_str().expect("a CRS URI");
                let asked = url::form_urlencoded::byte_serialize(crs.as_bytes()).collect::<String>();
                for url in [
                    format!("{base}/collections/{id}/items/{fid}?crs={asked}"),
                    format!("{items_url}?crs={asked}&limit=1"),
                ] {
                    let response = client().get(&url).send().await.expect("request");
                    assert_eq!(response.status(), 200, "{url}");
                    let said = response.headers().get("content-crs").and_then(|v| v.to_str().ok()).map(str::to_owned);
                    assert_eq!(said, Some(format!("<{crs}>")), "{url}");
                }
            }
        }

        // Part 3: queryables, and a filter over one of them; an unknown one is a 400.
        let queryables_url =
            href(entry, "http://www.opengis.net/def/rel/ogc/1.0/queryables", "application/schema+json")
                .expect("queryables link")
                .to_owned();
        let q = ask(&queryables_url).await;
        assert_eq!(q.status, 200, "{}", what("queryables"));
        assert_eq!(q.media, "application/schema+json");
        assert_eq!(q.body["$id"], queryables_url.as_str());
        assert_eq!(q.body["type"], "object");
        assert!(q.body["$schema"].as_str().is_some_and(|s| s.contains("json-schema.org")));
        let names: Vec<String> = q.body["properties"].as_object().expect("properties").keys().cloned().collect();
        let text = names
            .iter()
            .find(|n| {
                q.body["properties"][n.as_str()]["type"] == "string"
                    && q.body["properties"][n.as_str()]["format"].is_null()
            })
            .expect("a text queryable");
        for lang in ["cql2-text", "cql-text"] {
            let filter =
                url::form_urlencoded::byte_serialize(format!("{text} IS NOT NULL").as_bytes()).collect::<String>();
            let a = ask(&format!("{items_url}?filter-lang={lang}&filter={filter}&limit=3")).await;
            assert_eq!((a.status, a.media.as_str()), (200, "application/geo+json"), "{}: {}", what("filter"), a.body);
        }
        let json = url::form_urlencoded::byte_serialize(
            serde_json::json!({ "op": "isNull", "args": [{ "property": text }] }).to_string().as_bytes(),
        )
        .collect::<String>();
        let a = ask(&format!("{items_url}?filter-lang=cql2-json&filter={json}")).await;
        assert_eq!(a.status, 200, "{}: {}", what("cql2-json"), a.body);
        assert_eq!(a.body["numberMatched"], 0, "{}", what("no feature lacks it"));
        let a = ask(&format!("{items_url}?filter=this_is_not_a_queryable%20%3D%201")).await;
        assert_eq!(a.status, 400, "{}: {}", what("an unknown queryable"), a.body);
        let a = ask(&format!("{items_url}?filter=S_INTERSECTS(geometry%2CPOINT(1000000%201000000))")).await;
        assert_eq!(a.status, 400, "{}: {}", what("coordinates out of range"), a.body);
    }

    // HEAD carries the links too.
    let head = client().head(format!("{base}/collections/parcels/items?limit=1")).send().await.expect("HEAD");
    assert_eq!(head.status(), 200);
    assert!(link_headers(head.headers()).iter().any(|(rel, _, _)| rel == "self"), "HEAD has the Link headers");
    // HEAD of an export says what it would be, checked like the GET, without writing it.
    let head = client().head(format!("{base}/collections/parcels/export?f=gpkg")).send().await.expect("HEAD");
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "application/geopackage+sqlite3");
    assert!(head.headers()["content-disposition"].to_str().is_ok_and(|d| d.contains("attachment")));
    let bad = client().head(format!("{base}/collections/parcels/export?f=kml")).send().await.expect("HEAD");
    assert_eq!(bad.status(), 400);
}
