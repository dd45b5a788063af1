//! The endpoints. Each takes the caller's [`Access`] first, reads its parameters strictly
//! ([`Params`]) and answers from the engine's current view, going to the store only for what the
//! engine does not hold (retired versions).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::Response;
use landdb_access::Operation;
use landdb_engine::{Parcel, ParcelRecord, Snapshot};
use landdb_model::{CitizenId, CommuneCode, NationalParcelId, ParcelVersion, VersionId};
use landdb_store::Period;
use serde_json::json;

use crate::AppState;
use crate::access::Access;
use crate::crs::OutputCrs;
use crate::cursor::Direction;
use crate::export::geojson_stream;
use crate::features::{Field, Output, write_features};
use crate::filter::{Filter, Language, Queryable, SortBy, Validity};
use crate::formats::Format;
use crate::ogc::{ApiError, CONFORMANCE, CRS84, GEOJSON, JSON, Link, OPENAPI, json_response};
use crate::params::{BoxQuery, MAX_LIMIT, Params};
use crate::reference::ReferenceCollection;
use crate::scope::{Release, ReleasedSelection, Scoped};

/// The parameters each endpoint accepts, with what they mean: the handlers refuse any other, and
/// the OpenAPI document is written from the same lists.
pub const COMMON: &[(&str, &str)] = &[("f", "the format of the answer: `json` (the only one so far)")];
pub const ITEMS: &[(&str, &str)] = &[
    ("f", "the format of the answer: `json` (the only one so far)"),
    ("bbox", "west,south,east,north (in bbox-crs): parcels intersecting the box"),
    (
        "bbox-crs",
        "the coordinate system of bbox: CRS84 (the default), or any the collection lists (EPSG:4326 and 4756 latitude first; TM-3 zones and UTM easting first)",
    ),
    ("limit", "parcels a page, 1 to 10000 (larger values are lowered to 10000); 100 when absent"),
    ("after", "where the page starts: the cursor the `next` link carries (bound to the caller and the query)"),
    ("before", "where the page ends: the cursor the `prev` link carries (bound to the caller and the query)"),
    ("properties", "comma-separated property names to include"),
    (
        "crs",
        "the coordinate system of the answer: CRS84 (the default), EPSG 4326, 4756 (VN-2000), a VN-2000 TM-3 zone, 32648 or 32649",
    ),
    (
        "filter",
        "a CQL2 condition over the queryables (/collections/parcels/queryables): comparisons, LIKE, BETWEEN, IN, IS NULL, AND/OR/NOT, casei(); s_intersects and the other spatial operators on `geometry`; t_intersects and the other temporal operators on valid_from, valid_to or INTERVAL(valid_from, valid_to)",
    ),
    ("filter-lang", "the language of filter: cql2-text (the default; cql-text is accepted too) or cql2-json"),
    ("filter-crs", "the coordinate system of geometries in filter, one of the collection's `crs` list (default CRS84)"),
    (
        "sortby",
        "the order of the parcels: comma-separated queryables, each optionally prefixed + (ascending) or - (descending), as sortby=-area_m2,number; the version breaks ties",
    ),
    (
        "datetime",
        "an instant or an interval (RFC 3339 or dates; `..` for an open end, as 2020-01-01/..): the parcel versions valid at some moment of it, from the history",
    ),
];
pub const ITEM: &[(&str, &str)] = &[
    ("f", "the format of the answer: `json` (the only one so far)"),
    ("properties", "comma-separated property names to include"),
    ("crs", "the coordinate system of the answer, as for items"),
];
pub const HOLDER: &[(&str, &str)] = &[
    ("f", "the format of the answer: `json` (the only one so far)"),
    ("properties", "comma-separated property names to include"),
    ("crs", "the coordinate system of the answer, as for items"),
    ("history", "`true`: the parcels the citizen held earlier too, with their periods (needs the history operation)"),
    (
        "purpose",
        "the case or file this lookup is made for (recorded in the audit log beside the agency's legal purpose)",
    ),
];
pub const EXPORT: &[(&str, &str)] = &[
    (
        "f",
        "the format of the export: `geojson` (or `json`; RFC 7946, streamed), `gpkg` (GeoPackage), `shp` (Shapefile, zipped, UTF-8) or `dxf` (CAD: boundaries on one layer a commune, sheet/number as text)",
    ),
    ("commune", "only the parcels of this commune (5-digit code)"),
    ("bbox", "only the parcels intersecting west,south,east,north (in bbox-crs)"),
    ("bbox-crs", "the coordinate system of bbox, as for items"),
    ("polygon", "only the parcels intersecting this polygon (WKT, in filter-crs: longitude/latitude by default)"),
    ("filter", "only the parcels matching this CQL2 condition, as for items"),
    ("filter-lang", "the language of filter: cql2-text (the default; cql-text is accepted too) or cql2-json"),
    ("filter-crs", "the coordinate system of geometries in filter and polygon, as for items (default CRS84)"),
    ("properties", "comma-separated property names to include"),
    (
        "crs",
        "the coordinate system of the export: CRS84 (the default), EPSG 4326, 4756 (VN-2000), a VN-2000 TM-3 zone (what surveyors work in), 32648 or 32649",
    ),
];
const EXPORT_FORMATS: &[&str] = &["json", "geojson", "gpkg", "geopackage", "shp", "shapefile", "dxf"];
pub const AT_POINT: &[(&str, &str)] = &[
    ("f", "the format of the answer: `json` (the only one so far)"),
    ("lon", "longitude (WGS84)"),
    ("lat", "latitude (WGS84)"),
    ("x", "instead of lon and lat: the easting (or longitude) in point-crs"),
    ("y", "instead of lon and lat: the northing (or latitude) in point-crs"),
    (
        "point-crs",
        "the coordinate system of x and y: a VN-2000 TM-3 zone (EPSG code, as surveyors measure), 4756, 4326, 32648 or 32649",
    ),
    (
        "datetime",
        "an instant (RFC 3339, or a date for its midnight UTC): the parcels that held the point then, from the history",
    ),
    ("properties", "comma-separated property names to include"),
    ("crs", "the coordinate system of the answer, as for items"),
];
pub const BY_KEY: &[(&str, &str)] = &[
    ("f", "the format of the answer: `json` (the only one so far)"),
    ("properties", "comma-separated property names to include"),
    ("crs", "the coordinate system of the answer, as for items"),
];

fn names(params: &[(&'static str, &str)]) -> Vec<&'static str> {
    params.iter().map(|(n, _)| *n).collect()
}

/// What every handler reads of the request besides its path: the server's address as the
/// caller reached it (for absolute links) and the raw query, which each handler parses strictly.
#[derive(Debug)]
pub struct Call {
    pub base: String,
    pub query: Option<String>,
    /// Whether the client asked for HTML (a browser).
    pub wants_html: bool,
}

impl Call {
    pub(crate) fn params(&self, allowed: &[(&'static str, &str)]) -> Result<Params, ApiError> {
        Params::parse(self.query.as_deref(), &names(allowed))
    }
}

impl FromRequestParts<Arc<AppState>> for Call {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let base = match &app.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
                ["http://", host].concat()
            }
        };
        let wants_html =
            parts.headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(crate::html::prefers_html);
        Ok(Call { base, query: parts.uri.query().map(str::to_owned), wants_html })
    }
}

fn ok_json(media_type: &'static str, body: serde_json::Value) -> Response {
    crate::ogc::linked_json(StatusCode::OK, media_type, body)
}

pub const LANDING: &[(&str, &str)] =
    &[("f", "the format of the answer: `json`, or `html` (what a browser gets when it asks for HTML)")];

pub async fn landing(call: Call) -> Result<Response, ApiError> {
    let params = Params::parse_formats(call.query.as_deref(), &names(LANDING), &["json", "html"])?;
    let base = &call.base;
    if params.get("f") == Some("html") || (params.get("f").is_none() && call.wants_html) {
        return Ok(crate::pages::landing_html(base));
    }
    Ok(ok_json(
        JSON,
        json!({
            "title": "landdb",
            "description": "Vietnam's national land database: cadastral parcels as OGC API – Features",
            "links": [
                Link::new(format!("{base}/"), "self", JSON, "this document"),
                Link::new(format!("{base}/api"), "service-desc", OPENAPI, "the API definition"),
                Link::new(format!("{base}/conformance"), "conformance", JSON, "the conformance classes"),
                Link::new(format!("{base}/collections"), "data", JSON, "the collections"),
            ],
        }),
    ))
}

pub async fn conformance(call: Call) -> Result<Response, ApiError> {
    call.params(COMMON)?;
    let base = &call.base;
    Ok(ok_json(
        JSON,
        json!({
            "links": [Link::new(format!("{base}/conformance"), "self", JSON, "the conformance classes")],
            "conformsTo": CONFORMANCE,
        }),
    ))
}

/// The parcels collection as the caller sees it: its extent is the box around the caller's
/// parcels, not the country's.
fn parcels_collection(base: &str, scoped: &Scoped<'_>, reference: &landdb_model::ReferenceData) -> serde_json::Value {
    let bbox = scoped.extent().map_or_else(
        || json!([[-180.0, -90.0, 180.0, 90.0]]),
        |e| json!([[e.min().x, e.min().y, e.max().x, e.max().y]]),
    );
    json!({
        "id": "parcels",
        "title": "Cadastral parcels",
        "description": "Every current land parcel (thửa đất): boundary, map sheet and parcel number, land use, area. \
                        The feature id is the parcel version.",
        "itemType": "feature",
        "crs": OutputCrs::supported(reference),
        "storageCrs": CRS84,
        "extent": { "spatial": { "bbox": bbox, "crs": CRS84 } },
        "links": [
            Link::new(format!("{base}/collections/parcels"), "self", JSON, "this collection"),
            Link::new(format!("{base}/collections/parcels/items"), "items", GEOJSON, "the parcels"),
            Link::new(
                format!("{base}/collections/parcels/tiles"),
                "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector",
                JSON,
                "the parcels as vector tiles",
            ),
            Link::new(
                format!("{base}/collections/parcels/queryables"),
                "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "application/schema+json",
                "what filter and sortby can name",
            ),
        ],
    })
}

pub async fn collections(State(app): State<Arc<AppState>>, access: Access, call: Call) -> Result<Response, ApiError> {
    call.params(COMMON)?;
    let base = &call.base;
    let scoped = app.sources.scoped(&access);
    Ok(ok_json(
        JSON,
        json!({
            "links": [Link::new(format!("{base}/collections"), "self", JSON, "the collections")],
            "collections": std::iter::once(parcels_collection(base, &scoped, &app.reference))
                .chain(ReferenceCollection::ALL.into_iter().map(|c| reference_collection(base, c)))
                .collect::<Vec<_>>(),
        }),
    ))
}

pub async fn collection(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(id): Path<String>,
    call: Call,
) -> Result<Response, ApiError> {
    call.params(COMMON)?;
    if let Some(c) = ReferenceCollection::of(&id) {
        return Ok(ok_json(JSON, reference_collection(&call.base, c)));
    }
    known_collection(&id)?;
    Ok(ok_json(JSON, parcels_collection(&call.base, &app.sources.scoped(&access), &app.reference)))
}

pub(crate) fn known_collection(id: &str) -> Result<(), ApiError> {
    if id == "parcels" {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "there is no collection `{id}`; the collections are: parcels, communes, land-use-codes"
        )))
    }
}

fn reference_collection(base: &str, c: ReferenceCollection) -> serde_json::Value {
    let id = c.id();
    json!({
        "id": id,
        "title": c.title(),
        "description": c.description(),
        "itemType": "feature",
        "links": [
            Link::new(format!("{base}/collections/{id}"), "self", JSON, "this collection"),
            Link::new(format!("{base}/collections/{id}/items"), "items", GEOJSON, "its features"),
            Link::new(
                format!("{base}/collections/{id}/queryables"),
                "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "application/schema+json",
                "what filter can name",
            ),
        ],
    })
}

pub const REFERENCE_ITEMS: &[(&str, &str)] = &[
    ("f", "the format of the answer: `json` (the only one so far)"),
    ("limit", "features a page, 1 to 10000 (larger values are lowered to 10000); 100 when absent"),
    ("after", "the id after which the page starts (the `next` link carries it)"),
    (
        "bbox",
        "west,south,east,north (in bbox-crs): communes whose parcels (those the caller sees) meet the box; land-use codes have no place and meet none",
    ),
    ("bbox-crs", "the coordinate system of bbox, as for parcels"),
    (
        "datetime",
        "an instant or an interval: land-use codes whose list was in force at some moment of it; communes have no time and meet none",
    ),
    ("filter", "a CQL2 condition over the collection's queryables (/collections/{collectionId}/queryables)"),
    ("filter-lang", "the language of filter: cql2-text (the default; cql-text is accepted too) or cql2-json"),
    ("filter-crs", "the coordinate system of geometries in filter, one of the collection's `crs` list (default CRS84)"),
];

/// `path` with a query of `parts` (each already encoded, `name=value&…`; empty ones left out),
/// without a `?` when there is none.
fn with_query<'a>(path: String, parts: impl IntoIterator<Item = &'a str>) -> String {
    let query: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) }
}

/// `filter-crs`: the coordinate system of the geometries in `filter`, any the server answers in
/// (the collection's `crs` list); CRS84 when not given.
fn filter_crs(app: &AppState, params: &Params) -> Result<OutputCrs, ApiError> {
    match params.get("filter-crs") {
        None => Ok(OutputCrs::crs84()),
        Some(raw) => OutputCrs::parse(raw, &app.reference).map_err(|_| {
            ApiError::bad_parameter(format!(
                "filter-crs={raw}: not a coordinate system this server knows; the collection's `crs` list names them"
            ))
        }),
    }
}

/// A page of a reference collection, by id.
fn reference_items(app: &AppState, c: ReferenceCollection, call: &Call, access: &Access) -> Result<Response, ApiError> {
    let params = call.params(REFERENCE_ITEMS)?;
    let limit = params.limit()?;
    // Reference collections have no geometry to filter on: the CRS is checked, nothing more.
    filter_crs(app, &params)?;
    let language = Language::parse(params.get("filter-lang"))?;
    let selection = crate::reference::Selection {
        bbox: params.bbox(&app.reference)?,
        datetime: params.get("datetime").map(period).transpose()?,
        filter: params.get("filter").map(|f| crate::filter::parse_expression(f, language)).transpose()?,
    };
    selection.check(c)?;
    let scoped = app.sources.scoped(access);
    let all = c.features(&app.reference);
    let start = params.get("after").map_or(0, |a| all.partition_point(|(id, _)| id.as_str() <= a));
    // Parcel counts and extents over the caller's parcels: for the page alone, or for every
    // feature when the selection may depend on them.
    let with_parcels = |(id, f): &(String, serde_json::Value)| c.with_parcels(id, f.clone(), &scoped, &app.reference);
    let (matched, page, more): (usize, Vec<serde_json::Value>, bool) = if selection.is_empty() {
        let page: Vec<_> = all.iter().skip(start).take(limit).map(with_parcels).collect();
        let more = start + page.len() < all.len();
        (all.len(), page, more)
    } else {
        // Counting every commune's parcels is the costly part: only when the selection reads
        // the counts or extents; otherwise only the page's features get them.
        let needs_parcels = selection.needs_parcels(c);
        let chosen: Vec<usize> = (0..all.len())
            .filter(|&i| {
                if needs_parcels { selection.admits(c, &with_parcels(&all[i])) } else { selection.admits(c, &all[i].1) }
            })
            .collect();
        let from = chosen.partition_point(|&i| i < start);
        let page: Vec<_> = chosen[from..].iter().take(limit).map(|&i| with_parcels(&all[i])).collect();
        (chosen.len(), page, from + limit < chosen.len())
    };
    // The outlines of the caller's parcels, for the features answered only, and on pages small
    // enough for a map's view (each outline is a hull over a commune's parcels).
    let page: Vec<serde_json::Value> = if page.len() <= crate::reference::OUTLINED_PAGE {
        page.into_iter().map(|f| c.with_outline(f, &scoped, &app.reference)).collect()
    } else {
        page
    };
    let base = &call.base;
    let id = c.id();
    // The query as links repeat it: every parameter but the cursor.
    let repeated = |after: Option<&str>| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (name, _) in REFERENCE_ITEMS {
            if let (true, Some(v)) = (*name != "after", params.get(name)) {
                q.append_pair(name, v);
            }
        }
        if let Some(a) = after {
            q.append_pair("after", a);
        }
        with_query(format!("{base}/collections/{id}/items"), [q.finish().as_str()])
    };
    let mut links = vec![
        Link::new(repeated(params.get("after")), "self", GEOJSON, "this page"),
        Link::new(format!("{base}/collections/{id}"), "collection", JSON, "the collection"),
    ];
    if let (true, Some(last)) = (more, page.last().and_then(|f| f["id"].as_str())) {
        links.push(Link::new(repeated(Some(last)), "next", GEOJSON, "the next page"));
    }
    Ok(ok_json(
        GEOJSON,
        json!({
            "type": "FeatureCollection",
            "features": page,
            "numberMatched": matched,
            "numberReturned": page.len(),
            "links": links,
        }),
    ))
}

/// One feature of a reference collection.
fn reference_item(
    app: &AppState,
    c: ReferenceCollection,
    id: &str,
    call: &Call,
    access: &Access,
) -> Result<Response, ApiError> {
    call.params(COMMON)?;
    let scoped = app.sources.scoped(access);
    let base = &call.base;
    let collection = c.id();
    let (i, f) = c
        .features(&app.reference)
        .into_iter()
        .find(|(i, _)| i == id)
        .ok_or_else(|| ApiError::not_found(format!("there is no `{id}` in {collection}")))?;
    let mut feature = c.with_outline(c.with_parcels(&i, f, &scoped, &app.reference), &scoped, &app.reference);
    let own = path_segment(&i);
    feature["links"] = json!([
        Link::new(format!("{base}/collections/{collection}/items/{own}"), "self", GEOJSON, "this feature"),
        Link::new(format!("{base}/collections/{collection}"), "collection", JSON, "the collection"),
    ]);
    Ok(ok_json(GEOJSON, feature))
}

/// A feature collection of `parcels` with the envelope OGC API asks for.
fn feature_collection(
    release: Release<'_>,
    fields: &[Field],
    matched: Option<usize>,
    links: Vec<Link>,
    crs: &OutputCrs,
) -> Result<Response, ApiError> {
    let transformer = crs.transformer()?;
    let output = Output { crs, transformer: transformer.as_ref() };
    let mut out: Vec<u8> = Vec::with_capacity(512 + release.parcels().len() * 1_200);
    out.extend_from_slice(b"{\"type\":\"FeatureCollection\",\"features\":[");
    write_features(&mut out, &release, fields, &output);
    out.extend_from_slice(b"],");
    let mut digits = itoa::Buffer::new();
    if let Some(n) = matched {
        out.extend_from_slice(b"\"numberMatched\":");
        out.extend_from_slice(digits.format(n).as_bytes());
        out.push(b',');
    }
    out.extend_from_slice(b"\"numberReturned\":");
    out.extend_from_slice(digits.format(release.parcels().len()).as_bytes());
    out.extend_from_slice(b",\"links\":");
    let headers = published(links, &mut out);
    out.push(b'}');
    let mut response = json_response(StatusCode::OK, GEOJSON, out);
    response.headers_mut().extend(headers);
    Ok(release.into_disclosure().on(with_crs(response, crs)))
}

/// A feature collection that holds every parcel the request matched (a lookup): `numberMatched`
/// is what it returns.
fn whole_collection(
    release: Release<'_>,
    fields: &[Field],
    links: Vec<Link>,
    crs: &OutputCrs,
) -> Result<Response, ApiError> {
    let matched = release.parcels().len();
    feature_collection(release, fields, Some(matched), links, crs)
}

/// `links` completed, written to `out` as a JSON array, and returned as `Link` headers
/// ([`crate::ogc::publish_links`]), for the writers that write their bodies themselves.
fn published(mut links: Vec<Link>, out: &mut Vec<u8>) -> axum::http::HeaderMap {
    let mut headers = axum::http::HeaderMap::new();
    crate::ogc::publish_links(&mut links, &mut headers);
    Link::write_all(out, &links);
    headers
}

/// `Content-Crs` for CRS84, the usual answer's, made once.
const CRS84_HEADER: &str = "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>";

/// Says which CRS the coordinates are in (OGC API – Features Part 2).
fn with_crs(mut response: Response, crs: &OutputCrs) -> Response {
    let value = if crs.uri == crate::ogc::CRS84 {
        Ok(axum::http::HeaderValue::from_static(CRS84_HEADER))
    } else {
        axum::http::HeaderValue::from_str(&["<", &crs.uri, ">"].concat())
    };
    if let Ok(v) = value {
        response.headers_mut().insert("content-crs", v);
    }
    response
}

/// The `crs` parameter.
fn output_crs(app: &AppState, params: &Params) -> Result<OutputCrs, ApiError> {
    params.get("crs").map_or_else(|| Ok(OutputCrs::crs84()), |raw| OutputCrs::parse(raw, &app.reference))
}

/// A query over a collection: its parameters, its box, and the properties the caller may see.
type CollectionQuery = (Params, Option<BoxQuery>, Vec<Field>);

/// What a query over a collection reads first, the collection checked.
fn collection_query(
    id: &str,
    call: &Call,
    allowed: &[(&'static str, &str)],
    access: &Access,
    reference: &landdb_model::ReferenceData,
    formats: &[&str],
) -> Result<CollectionQuery, ApiError> {
    known_collection(id)?;
    let params = Params::parse_formats(call.query.as_deref(), &names(allowed), formats)?;
    let bbox = params.bbox(reference)?;
    let fields = Field::selected(params.get("properties"), access)?;
    Ok((params, bbox, fields))
}

/// The part of two boxes they share; boxes that do not meet give one that meets nothing.
fn both(a: Option<geo::Rect<f64>>, b: Option<geo::Rect<f64>>) -> Option<geo::Rect<f64>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(crate::filter::overlap(a, b).unwrap_or_else(crate::filter::nowhere)),
        (a, b) => a.or(b),
    }
}

/// `datetime`: an instant, or an interval `start/end` with `..` (or nothing) for an open end.
fn period(raw: &str) -> Result<Period, ApiError> {
    let bad = || {
        ApiError::bad_parameter(format!(
            "datetime={raw}: give an RFC 3339 instant or date, or an interval start/end (`..` for an open end)"
        ))
    };
    let at = |s: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        if s.is_empty() || s == ".." {
            return Ok(None);
        }
        let micros = crate::filter::parse_instant(s).ok_or_else(bad)?;
        chrono::DateTime::from_timestamp_micros(micros).map(Some).ok_or_else(bad)
    };
    match raw.split_once('/') {
        None => {
            let t = at(raw)?.ok_or_else(bad)?;
            Ok(Period { start: Some(t), end: Some(t) })
        }
        Some((a, b)) => {
            let p = Period { start: at(a)?, end: at(b)? };
            if let (Some(s), Some(e)) = (p.start, p.end)
                && s > e
            {
                return Err(ApiError::bad_parameter(format!("datetime={raw}: the interval ends before it starts")));
            }
            Ok(p)
        }
    }
}

/// Every parameter of an items query but its cursor and page size, in one order: what links
/// repeat and cursors are sealed to. A cursor opens with any `limit` (clients, the OGC test
/// suites among them, follow `next` with a page size of their own).
fn canonical_query(params: &Params) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (name, _) in ITEMS {
        if let (true, Some(v)) = (!matches!(*name, "after" | "before" | "limit"), params.get(name)) {
            q.append_pair(name, v);
        }
    }
    q.finish()
}

/// What an items request asks, read and checked before anything is looked up.
struct ItemsQuery {
    bbox: Option<BoxQuery>,
    fields: Vec<Field>,
    limit: usize,
    crs: OutputCrs,
    filter: Option<Filter>,
    sortby: Option<SortBy>,
    datetime: Option<Period>,
    after: Option<VersionId>,
    before: Option<VersionId>,
    /// The query as its cursors are sealed to: every parameter but the cursor and `limit`.
    canonical: String,
    /// `limit` as asked, repeated by links.
    asked_limit: Option<String>,
    /// The caller's agency, which its cursors are sealed to.
    agency: String,
}

impl ItemsQuery {
    fn read(app: &AppState, call: &Call, access: &Access) -> Result<ItemsQuery, ApiError> {
        let (params, bbox, fields) =
            collection_query("parcels", call, ITEMS, access, &app.reference, &["json", "geojson"])?;
        let limit = params.limit()?;
        let crs = output_crs(app, &params)?;
        let language = Language::parse(params.get("filter-lang"))?;
        let in_crs = filter_crs(app, &params)?;
        let filter = params.get("filter").map(|f| Filter::parse_in(f, language, access, &in_crs)).transpose()?;
        let sortby = SortBy::parse(params.get("sortby"), access)?;
        let datetime = params.get("datetime").map(period).transpose()?;
        if params.get("after").is_some() && params.get("before").is_some() {
            return Err(ApiError::bad_parameter("give `after` or `before`, not both"));
        }
        if params.get("before").is_some() && (datetime.is_some() || filter.as_ref().is_some_and(|f| f.temporal)) {
            return Err(ApiError::bad_parameter(
                "before: pages of the history are followed forwards only (with `after`, as the next links do)",
            ));
        }
        let canonical = canonical_query(&params);
        let asked_limit = params.get("limit").map(str::to_owned);
        let agency = access.agency().to_owned();
        let open = |direction: Direction| {
            params.get(direction.name()).map(|c| app.gate.cursors.open(&agency, &canonical, direction, c)).transpose()
        };
        let (after, before) = (open(Direction::After)?, open(Direction::Before)?);
        Ok(ItemsQuery {
            bbox,
            fields,
            limit,
            crs,
            filter,
            sortby,
            datetime,
            after,
            before,
            canonical,
            asked_limit,
            agency,
        })
    }

    /// The cursor of a page boundary at `version`.
    fn cursor(&self, app: &AppState, direction: Direction, version: VersionId) -> String {
        format!("{}={}", direction.name(), app.gate.cursors.seal(&self.agency, &self.canonical, direction, version))
    }

    /// Whether the query is about the past: answered from the history in the store.
    fn historical(&self) -> bool {
        self.datetime.is_some() || self.filter.as_ref().is_some_and(|f| f.temporal)
    }

    /// The link to a page of this query: every parameter but the cursor is repeated, so that a
    /// link cannot widen the query.
    fn link(&self, base: &str, cursor: Option<String>) -> String {
        let limit = self
            .asked_limit
            .as_ref()
            .map(|l| url::form_urlencoded::Serializer::new(String::new()).append_pair("limit", l).finish());
        let parts = [Some(self.canonical.as_str()), limit.as_deref(), cursor.as_deref()];
        with_query(format!("{base}/collections/parcels/items"), parts.into_iter().flatten())
    }

    fn links(&self, app: &AppState, base: &str, page: &[Parcel<'_>], earlier: bool, later: bool) -> Vec<Link> {
        let this = self
            .after
            .map(|a| self.cursor(app, Direction::After, a))
            .or_else(|| self.before.map(|b| self.cursor(app, Direction::Before, b)));
        let mut links = vec![
            Link::new(self.link(base, this), "self", GEOJSON, "this page"),
            Link::new(format!("{base}/collections/parcels"), "collection", JSON, "the collection"),
        ];
        if let (true, Some(last)) = (later, page.last()) {
            links.push(Link::new(
                self.link(base, Some(self.cursor(app, Direction::After, last.version()))),
                "next",
                GEOJSON,
                "the next page",
            ));
        }
        if let (true, Some(first)) = (earlier, page.first()) {
            links.push(Link::new(
                self.link(base, Some(self.cursor(app, Direction::Before, first.version()))),
                "prev",
                GEOJSON,
                "the previous page",
            ));
        }
        links
    }
}

pub async fn items(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(id): Path<String>,
    call: Call,
) -> Result<Response, ApiError> {
    if let Some(c) = ReferenceCollection::of(&id) {
        // Counting and outlining communes' parcels is CPU work of up to seconds on a national
        // store: on the blocking pool, not on a worker that other requests wait for.
        return tokio::task::spawn_blocking(move || reference_items(&app, c, &call, &access))
            .await
            .map_err(|e| ApiError::internal(&e))?;
    }
    known_collection(&id)?;
    let query = ItemsQuery::read(&app, &call, &access)?;
    let scoped = app.sources.scoped(&access);
    if query.historical() {
        return historical_items(&app, &scoped, &query, &call.base).await;
    }
    let ItemsQuery { after, before, .. } = query;
    let limit = access.page_limit(query.limit);
    let plain = query.bbox.is_none() && query.filter.is_none() && query.sortby.is_none();
    // The page, how many parcels match, and whether parcels lie before and after the page.
    let (page, matched, earlier, later): (Vec<Parcel<'_>>, usize, bool, bool) =
        match (plain, before.and_then(|b| scoped.everything_before(b)), scoped.everything_after(after)) {
            // Every parcel in version order, for a caller who sees them all: straight from the
            // engine's sorted columns.
            (true, Some(earlier_ones), _) => {
                let mut page: Vec<Parcel<'_>> = earlier_ones.take(limit + 1).collect();
                let earlier = page.len() > limit;
                page.truncate(limit);
                page.reverse();
                let later = page.last().is_some_and(|p| {
                    scoped.everything_after(Some(p.version())).is_some_and(|mut i| i.next().is_some())
                });
                (page, scoped.len(), earlier, later)
            }
            (true, None, Some(later_ones)) if before.is_none() => {
                let mut page: Vec<Parcel<'_>> = later_ones.take(limit + 1).collect();
                let later = page.len() > limit;
                page.truncate(limit);
                let earlier = page
                    .first()
                    .is_some_and(|p| scoped.everything_before(p.version()).is_some_and(|mut i| i.next().is_some()));
                (page, scoped.len(), earlier, later)
            }
            _ => {
                // Candidates from the R-tree when a box bounds the query, the caller's parcels
                // otherwise; then the filter, the order, and the page around the cursor.
                let region = both(query.bbox.map(|b| b.hull()), query.filter.as_ref().and_then(|f| f.bound));
                let mut found: Vec<Parcel<'_>> = match region {
                    Some(r) => scoped.in_box(r),
                    None => scoped.all(),
                };
                if let Some(f) = &query.filter {
                    found.retain(|p| f.matches(p, None));
                }
                if let Some(b) = query.bbox.filter(|b| !b.is_one_box()) {
                    found.retain(|p| b.meets(&p.geometry()));
                }
                match &query.sortby {
                    Some(s) => found.sort_unstable_by(|a, b| s.compare(a, b)),
                    None => found.sort_unstable_by_key(|p| p.version()),
                }
                // Where a cursor falls in this order: by its version alone, or with sortby by the
                // values of its parcel, which must then still be current (and the caller's).
                let place = |v: VersionId, d: Direction| -> Result<Option<Parcel<'_>>, ApiError> {
                    match &query.sortby {
                        None => Ok(None),
                        Some(_) => scoped.by_version(v).map(Some).ok_or_else(|| crate::cursor::invalid(d)),
                    }
                };
                let against = |p: &Parcel<'_>, v: VersionId, c: &Option<Parcel<'_>>| match (&query.sortby, c) {
                    (Some(s), Some(c)) => s.compare(p, c),
                    _ => p.version().cmp(&v),
                };
                let n = found.len();
                let (start, end) = match (after, before) {
                    (_, Some(b)) => {
                        let c = place(b, Direction::Before)?;
                        let end = found.partition_point(|p| against(p, b, &c).is_lt());
                        (end.saturating_sub(limit), end)
                    }
                    (Some(a), None) => {
                        let c = place(a, Direction::After)?;
                        let start = found.partition_point(|p| against(p, a, &c).is_le());
                        (start, (start + limit).min(n))
                    }
                    (None, None) => (0, limit.min(n)),
                };
                (found[start..end].to_vec(), n, start > 0, end < n)
            }
        };
    let links = query.links(&app, &call.base, &page, earlier, later);
    let release = scoped.release(page, &query.fields).await?;
    feature_collection(release, &query.fields, Some(matched), links, &query.crs)
}

/// Items from the history: the versions valid during `datetime` (all time when only the filter
/// is temporal), in version order, read from the store page by page until the page is full.
async fn historical_items(
    app: &AppState,
    scoped: &Scoped<'_>,
    query: &ItemsQuery,
    base: &str,
) -> Result<Response, ApiError> {
    let limit = scoped.access().page_limit(query.limit);
    if query.sortby.is_some() {
        return Err(ApiError::bad_parameter(
            "sortby cannot be combined with datetime or a temporal filter: the history is paged in version order",
        ));
    }
    if query.before.is_some() {
        return Err(ApiError::bad_parameter(
            "before: pages of the history are followed forwards only (with `after`, as the next links do)",
        ));
    }
    let period = query.datetime.unwrap_or_default();
    let region = both(query.bbox.map(|b| b.hull()), query.filter.as_ref().and_then(|f| f.bound));
    let two_boxes = query.bbox.filter(|b| !b.is_one_box());
    let position = scoped.position();
    let mut kept: Vec<ParcelRecord> = Vec::with_capacity(limit + 1);
    let mut from = query.after;
    let fetch = (limit + 1).max(500);
    while kept.len() <= limit {
        let read = scoped.valid_during(period, region, from, fetch).await?;
        from = read.last.or(from);
        let validity: std::collections::HashMap<VersionId, Validity> =
            read.visible.iter().map(|v| (v.id, Validity::new(v.valid_from, v.valid_to))).collect();
        let chunk = Snapshot::build(read.visible.into_iter().map(ParcelRecord::from), position);
        for p in chunk.parcels() {
            if kept.len() > limit {
                break;
            }
            if query.filter.as_ref().is_none_or(|f| f.matches(&p, validity.get(&p.version()).copied()))
                && two_boxes.is_none_or(|b| b.meets(&p.geometry()))
            {
                kept.push(p.record());
            }
        }
        if read.exhausted {
            break;
        }
    }
    let later = kept.len() > limit;
    kept.truncate(limit);
    let found = Snapshot::build(kept, position);
    let page: Vec<Parcel<'_>> = found.parcels().collect();
    let links = query.links(app, base, &page, false, later);
    let release = scoped.release(page, &query.fields).await?;
    feature_collection(release, &query.fields, None, links, &query.crs)
}

pub async fn item(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path((collection, id)): Path<(String, String)>,
    call: Call,
) -> Result<Response, ApiError> {
    if let Some(c) = ReferenceCollection::of(&collection) {
        return reference_item(&app, c, &id, &call, &access);
    }
    known_collection(&collection)?;
    let params = call.params(ITEM)?;
    let fields = Field::selected(params.get("properties"), &access)?;
    let missing = || ApiError::not_found(format!("there is no parcel version {id}"));
    let version = VersionId(id.parse::<i64>().map_err(|_| missing())?);
    let base = &call.base;
    let scoped = app.sources.scoped(&access);
    // Current, or an earlier version from the store. A current version outside the caller's
    // area goes the way of one that does not exist (the store's answer, filtered the same way),
    // so that neither answer nor time tells them apart.
    let past;
    let parcel = match scoped.by_version(version) {
        Some(p) => p,
        None => {
            let stored = scoped.version(version).await?.ok_or_else(missing)?;
            past = Snapshot::build([ParcelRecord::from(stored)], scoped.position());
            past.parcels().next().ok_or_else(missing)?
        }
    };
    let crs = output_crs(&app, &params)?;
    // A CRS PROJ cannot handle fails before anything is taken from the caller's limits; the
    // transformer itself is not Send, so it is made again after the release.
    crs.transformer()?;
    let release = scoped.release(vec![parcel], &fields).await?;
    let transformer = crs.transformer()?;
    let mut out = Vec::new();
    write_features(&mut out, &release, &fields, &Output { crs: &crs, transformer: transformer.as_ref() });
    // Drop the closing brace, add the links, close again.
    out.pop();
    out.extend_from_slice(b",\"links\":");
    let headers = published(
        vec![
            Link::new(format!("{base}/collections/parcels/items/{id}"), "self", GEOJSON, "this parcel"),
            Link::new(format!("{base}/collections/parcels"), "collection", JSON, "the collection"),
        ],
        &mut out,
    );
    out.push(b'}');
    let mut response = json_response(StatusCode::OK, GEOJSON, out);
    response.headers_mut().extend(headers);
    Ok(release.into_disclosure().on(with_crs(response, &crs)))
}

/// The whole selection as one file: GeoJSON streamed with constant memory whatever its size, or
/// a GeoPackage, zipped Shapefile or DXF written through GDAL and then sent.
pub async fn export(
    State(app): State<Arc<AppState>>,
    method: axum::http::Method,
    access: Access,
    Path(id): Path<String>,
    call: Call,
) -> Result<Response, ApiError> {
    let (params, bbox, fields) = collection_query(&id, &call, EXPORT, &access, &app.reference, EXPORT_FORMATS)?;
    let format = match params.get("f") {
        None => Format::GeoJson,
        Some(raw) => Format::parse(raw).ok_or_else(|| {
            ApiError::bad_parameter(format!("f={raw}: export as geojson, gpkg, shp (zipped Shapefile) or dxf"))
        })?,
    };
    let commune = params
        .get("commune")
        .map(|c| {
            CommuneCode::parse(c)
                .map_err(|_| ApiError::bad_parameter(format!("commune={c}: give a 5-digit commune code")))
        })
        .transpose()?;
    let language = Language::parse(params.get("filter-lang"))?;
    let in_crs = filter_crs(&app, &params)?;
    let filter = match (params.get("filter"), params.get("polygon")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_parameter(
                "give polygon or filter, not both (a filter can hold S_INTERSECTS(geometry, POLYGON(…)))",
            ));
        }
        (Some(f), None) => Some(Filter::parse_in(f, language, &access, &in_crs)?),
        (None, Some(p)) => {
            if !p.trim_start().to_ascii_uppercase().starts_with("POLYGON")
                && !p.trim_start().to_ascii_uppercase().starts_with("MULTIPOLYGON")
            {
                return Err(ApiError::bad_parameter(format!("polygon={p}: give a POLYGON or MULTIPOLYGON in WKT")));
            }
            let f = Filter::intersecting(p, &access, &in_crs)
                .map_err(|_| ApiError::bad_parameter(format!("polygon={p}: not a WKT polygon in {}", in_crs.uri)))?;
            Some(f)
        }
        (None, None) => None,
    };
    if filter.as_ref().is_some_and(|f| f.temporal) {
        return Err(ApiError::bad_parameter(
            "filter: exports hold current parcels; temporal conditions belong to items with datetime",
        ));
    }
    let crs = output_crs(&app, &params)?;
    // Built once here so that a CRS PROJ cannot handle fails before the answer starts.
    crs.transformer()?;
    let disposition = format!("attachment; filename=\"{}\"", format.file_name());
    // HEAD: what the export would be (checked as above), without selecting, taking from the
    // quota or writing a file; nothing is disclosed, so nothing is put on record.
    if method == axum::http::Method::HEAD {
        let mut response =
            crate::ogc::streamed_response(StatusCode::OK, format.media_type(), axum::body::Body::empty());
        if let Ok(v) = axum::http::HeaderValue::from_str(&disposition) {
            response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        return Ok(with_crs(response, &crs));
    }
    let scoped = app.sources.scoped(&access);
    let selection = scoped.select(commune.as_ref(), bbox, filter.as_ref());
    // Taken from the caller's limits whole, before a byte is sent (an agency granted bulk export
    // may pass the response limit, never its daily quota).
    let mut released = scoped.release_selection(selection, &fields).await?;
    let disclosed = released.take_disclosure();
    let mut response = if format == Format::GeoJson {
        let body = axum::body::Body::from_stream(geojson_stream(released, fields, crs.clone()));
        with_crs(crate::ogc::streamed_response(StatusCode::OK, GEOJSON, body), &crs)
    } else {
        file_response(released, fields, crs, format).await?
    };
    if let Ok(v) = axum::http::HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(disclosed.on(response))
}

/// A GDAL format: written to a scratch directory on a blocking thread, then read back in chunks
/// (the file is unlinked once open, so nothing is left behind whatever the client does).
async fn file_response(
    released: ReleasedSelection,
    fields: Vec<Field>,
    crs: OutputCrs,
    format: Format,
) -> Result<Response, ApiError> {
    use tokio::io::AsyncReadExt;
    static EXPORTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = EXPORTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("landdb-export-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| ApiError::internal(&e))?;
    let written = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || crate::formats::write(&released, &fields, &crs, format, &dir))
            .await
            .map_err(|e| ApiError::internal(&e))
            .and_then(|r| r)
    };
    let opened = match written {
        Ok(path) => tokio::fs::File::open(&path).await.map_err(|e| ApiError::internal(&e)),
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let file = opened?;
    let length = file.metadata().await.map(|m| m.len()).ok();
    let stream = futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 1 << 20];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut response = axum::response::IntoResponse::into_response(axum::body::Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_static(format.media_type()));
    if let Some(n) = length {
        headers.insert(header::CONTENT_LENGTH, axum::http::HeaderValue::from(n));
    }
    Ok(response)
}

/// Where a point lookup asks: `lon`/`lat`, or `x`/`y` in `point-crs` (VN-2000 coordinates as a
/// surveyor reads them off a plan), as WGS84 longitude and latitude.
fn lookup_point(app: &AppState, params: &Params) -> Result<(f64, f64), ApiError> {
    let (lon, lat) = match (params.get("lon").or(params.get("lat")), params.get("x").or(params.get("y"))) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_parameter("give lon and lat, or x and y with point-crs, not both"));
        }
        (None, Some(_)) => {
            let raw = params
                .get("point-crs")
                .ok_or_else(|| ApiError::bad_parameter("parameter `point-crs` is required with x and y"))?;
            let crs = OutputCrs::parse(raw, &app.reference).map_err(|_| {
                ApiError::bad_parameter(format!("point-crs={raw}: not a coordinate system this server knows"))
            })?;
            let (x, y) = (params.number("x")?, params.number("y")?);
            // x is the easting or longitude whatever the CRS's axis order.
            let (first, second) = if crs.latitude_first { (y, x) } else { (x, y) };
            crs.position_to_wgs84(first, second)?
        }
        _ => {
            if params.get("point-crs").is_some() {
                return Err(ApiError::bad_parameter("point-crs goes with x and y; lon and lat are WGS84"));
            }
            (params.number("lon")?, params.number("lat")?)
        }
    };
    if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
        return Err(ApiError::bad_parameter(format!("lon={lon}, lat={lat} is not a WGS84 position")));
    }
    Ok((lon, lat))
}

/// Parcels at a point: the lookup agencies make most.
pub async fn at_point(State(app): State<Arc<AppState>>, access: Access, call: Call) -> Result<Response, ApiError> {
    let params = call.params(AT_POINT)?;
    let (lon, lat) = lookup_point(&app, &params)?;
    let fields = Field::selected(params.get("properties"), &access)?;
    let crs = output_crs(&app, &params)?;
    let scoped = app.sources.scoped(&access);
    let base = &call.base;
    // ryu, not `Display`: formatting two doubles through `fmt` cost more than the audit entry.
    let (mut x, mut y) = (ryu::Buffer::new(), ryu::Buffer::new());
    let href = [base.as_str(), "/parcels/at?lon=", x.format(lon), "&lat=", y.format(lat)].concat();
    let links = vec![Link::new(href, "self", GEOJSON, "this lookup")];
    if let Some(raw) = params.get("datetime") {
        // On a past date: from the store's history (rarer, and not in memory).
        let when = instant(raw)?;
        let versions = scoped.at_point_on(lon, lat, when).await?;
        let then = Snapshot::build(versions.into_iter().map(ParcelRecord::from), scoped.position());
        let release = scoped.release(then.parcels().collect(), &fields).await?;
        return whole_collection(release, &fields, links, &crs);
    }
    let release = scoped.release(scoped.at_point(lon, lat), &fields).await?;
    whole_collection(release, &fields, links, &crs)
}

/// The path of the lookup by natural key, each part one path segment ([`path_segment`]): a map
/// sheet or parcel number may hold a space, `/`, `?` or `#`.
pub fn key_path(key: &landdb_model::ParcelKey) -> String {
    format!("/parcels/key/{}/{}/{}", key.commune, path_segment(&key.sheet), path_segment(&key.number))
}

/// `s` percent-encoded as one path segment: what a segment cannot hold as it is (RFC 3986
/// `pchar`), `/` and `%` itself.
fn path_segment(s: &str) -> String {
    use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
    const SEGMENT: &AsciiSet = &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'/')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}')
        .add(b'\\')
        .add(b'^')
        .add(b'|')
        .add(b'[')
        .add(b']');
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// The current parcel with a natural key: commune, map sheet, parcel number.
pub async fn by_key(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path((commune, sheet, number)): Path<(String, String, String)>,
    call: Call,
) -> Result<Response, ApiError> {
    let params = call.params(BY_KEY)?;
    let fields = Field::selected(params.get("properties"), &access)?;
    let crs = output_crs(&app, &params)?;
    let code = CommuneCode::parse(&commune)
        .map_err(|_| ApiError::bad_parameter(format!("commune {commune}: give a 5-digit commune code")))?;
    let key = landdb_model::ParcelKey::new(code, sheet, number);
    let scoped = app.sources.scoped(&access);
    let found: Vec<Parcel<'_>> = scoped.by_key(&key).into_iter().collect();
    if found.is_empty() {
        return Err(ApiError::not_found(format!(
            "no current parcel has the key commune {}, sheet {}, number {}",
            key.commune, key.sheet, key.number
        )));
    }
    let base = &call.base;
    let links = vec![Link::new(format!("{base}{}", key_path(&key)), "self", GEOJSON, "this lookup")];
    let release = scoped.release(found, &fields).await?;
    feature_collection(release, &fields, Some(1), links, &crs)
}

/// An instant: RFC 3339, or a date (its midnight, UTC).
pub fn instant(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            ApiError::bad_parameter(format!(
                "datetime={raw}: give an RFC 3339 instant (2026-01-01T00:00:00Z) or a date"
            ))
        })
}

/// Every version a parcel ever had (by its natural key), oldest first: when each was valid, the
/// batch that wrote it, the versions it came from and those that came from it (splits, merges).
pub async fn history(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path((collection, id)): Path<(String, String)>,
    call: Call,
) -> Result<Response, ApiError> {
    known_collection(&collection)?;
    call.params(COMMON)?;
    let missing = || ApiError::not_found(format!("there is no parcel version {id}"));
    let version = VersionId(id.parse::<i64>().map_err(|_| missing())?);
    let scoped = app.sources.scoped(&access);
    // Only versions in the caller's area, and lineage inside it; none of them, and the parcel
    // does not exist for the caller.
    let versions = scoped.history(version).await?.ok_or_else(missing)?;
    let Some(first) = versions.first() else { return Err(missing()) };
    let key = first.version.parcel.key.clone();
    let base = &call.base;
    let released: Vec<&ParcelVersion> = versions.iter().map(|v| &v.version).collect();
    let disclosed = scoped.release_versions(&released).await?;
    let entries: Vec<serde_json::Value> = versions
        .iter()
        .map(|past| {
            let v = &past.version;
            json!({
                "version": v.id.0,
                "valid_from": v.valid_from,
                "valid_to": v.valid_to,
                "batch": v.batch.0,
                "national_id": v.parcel.national_id.as_str(),
                "area_m2": (v.parcel.geometry_area_m2 * 1e4).round() / 1e4,
                "came_from": past.came_from.iter().map(|l| l.0).collect::<Vec<_>>(),
                "went_to": past.went_to.iter().map(|s| s.0).collect::<Vec<_>>(),
                "href": format!("{base}/collections/parcels/items/{}", v.id.0),
            })
        })
        .collect();
    Ok(disclosed.on(ok_json(
        JSON,
        json!({
            "key": { "commune": key.commune.as_str(), "sheet": key.sheet, "number": key.number },
            "versions": entries,
            "links": [
                Link::new(format!("{base}/collections/parcels/items/{id}/history"), "self", JSON, "this history"),
                Link::new(format!("{base}/collections/parcels/items/{id}"), "about", GEOJSON, "the version asked about"),
            ],
        }),
    )))
}

/// The parcels a citizen holds, by their 12-digit citizen ID (issue 21): for agencies granted
/// `holder-lookup` (which needs personal data). The ID's format is checked before anything is
/// looked up; the lookup is by the ID's blind index, and the audit entry names the citizen by
/// that index only (see `access::RequestLine`).
pub async fn holder_parcels(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(citizen): Path<String>,
    call: Call,
) -> Result<Response, ApiError> {
    let params = call.params(HOLDER)?;
    let fields = Field::selected(params.get("properties"), &access)?;
    let this_year = chrono::Datelike::year(&chrono::Utc::now());
    let citizen = CitizenId::parse(&citizen, &app.reference, this_year)
        .map_err(|e| ApiError::bad_parameter(format!("citizen ID: {e}")))?;
    let past = match params.get("history") {
        None | Some("false") => false,
        Some("true") if access.allows(Operation::History) => true,
        Some("true") => {
            return Err(ApiError::forbidden(
                "history=true: this agency's policy does not grant the history operation".to_owned(),
            ));
        }
        Some(other) => return Err(ApiError::bad_parameter(format!("history: give true or false, not {other:?}"))),
    };
    let crs = output_crs(&app, &params)?;
    crs.transformer()?;
    let scoped = app.sources.scoped(&access);
    let held = scoped.held_by(&citizen, past).await?;
    let found = Snapshot::build(held.into_iter().map(ParcelRecord::from), scoped.position());
    let parcels: Vec<Parcel<'_>> = found.parcels().collect();
    let base = &call.base;
    let links = vec![Link::new(format!("{base}/holders/{}/parcels", citizen.as_str()), "self", GEOJSON, "this lookup")];
    let release = scoped.release_held(parcels, &fields).await?;
    whole_collection(release, &fields, links, &crs)
}

pub async fn by_national_id(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(id): Path<String>,
    call: Call,
) -> Result<Response, ApiError> {
    let params = call.params(ITEM)?;
    let fields = Field::selected(params.get("properties"), &access)?;
    let national_id = NationalParcelId::parse(&id).map_err(|e| ApiError::bad_parameter(e.to_string()))?;
    let scoped = app.sources.scoped(&access);
    let found = scoped.by_national_id(&national_id);
    if found.is_empty() {
        return Err(ApiError::not_found(format!("no current parcel has the national ID {national_id}")));
    }
    let base = &call.base;
    let links = vec![Link::new(format!("{base}/parcels/national-id/{national_id}"), "self", GEOJSON, "this lookup")];
    let crs = output_crs(&app, &params)?;
    let release = scoped.release(found, &fields).await?;
    whole_collection(release, &fields, links, &crs)
}

/// The tile sets of parcels (OGC API – Tiles): one, vector tiles in WebMercatorQuad.
pub async fn tilesets(Path(id): Path<String>, call: Call) -> Result<Response, ApiError> {
    known_collection(&id)?;
    call.params(COMMON)?;
    let base = &call.base;
    Ok(ok_json(
        JSON,
        json!({
            "tilesets": [{
                "title": "Cadastral parcels as Mapbox Vector Tiles",
                "dataType": "vector",
                "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
                "tileMatrixSetURI": "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad",
                "description": format!(
                    "layer `{}`: id, commune, sheet, number, land_use (the first code), area_m2; parcels from zoom {} to {}",
                    crate::tiles::LAYER, crate::tiles::MIN_ZOOM, crate::tiles::MAX_ZOOM
                ),
                "links": [{
                    "href": format!("{base}/collections/parcels/tiles/WebMercatorQuad/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"),
                    "rel": "item",
                    "type": crate::tiles::MEDIA_TYPE,
                    "templated": true,
                }],
            }],
            "links": [Link::new(format!("{base}/collections/parcels/tiles"), "self", JSON, "the tile sets")],
        }),
    ))
}

/// One vector tile of the current parcels.
pub async fn tile(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path((collection, matrix_set, z, y, x)): Path<(String, String, String, String, String)>,
    call: Call,
) -> Result<Response, ApiError> {
    known_collection(&collection)?;
    call.params(&[])?;
    if matrix_set != "WebMercatorQuad" {
        return Err(ApiError::not_found(format!(
            "there is no tile matrix set `{matrix_set}` here; the one there is: WebMercatorQuad"
        )));
    }
    let number = |raw: &str| {
        raw.parse::<u32>().map_err(|_| ApiError::not_found(format!("there is no tile {z}/{y}/{x}: give whole numbers")))
    };
    let id = crate::tiles::TileId::new(number(&z)?, number(&y)?, number(&x)?)?;
    let scoped = app.sources.scoped(&access);
    // Below the first zoom with parcels a tile is empty: it would hold too many to see.
    let mut parcels = if id.z >= crate::tiles::MIN_ZOOM { scoped.in_box(id.bounds()) } else { Vec::new() };
    parcels.sort_unstable_by_key(|p| p.version());
    // A tile is an answer like any other: within the caller's limits, or refused whole.
    let release = scoped.release(parcels, &[]).await?;
    let bytes = crate::tiles::tile(&release, id)?;
    let mut response = release.into_disclosure().on(axum::response::IntoResponse::into_response(bytes));
    response.headers_mut().insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_static(crate::tiles::MEDIA_TYPE));
    Ok(response)
}

/// The queryables of parcels (OGC API – Features Part 3): what `filter` and `sortby` can name,
/// as a JSON Schema; only those the caller may see.
pub async fn queryables(access: Access, Path(id): Path<String>, call: Call) -> Result<Response, ApiError> {
    call.params(COMMON)?;
    let (title, properties): (&str, serde_json::Map<String, serde_json::Value>) = match ReferenceCollection::of(&id) {
        Some(c) => (c.title(), c.queryables().into_iter().map(|(n, s)| (n.to_owned(), s)).collect()),
        None => {
            known_collection(&id)?;
            let visible = Queryable::visible(&access).into_iter().map(|q| (q.name().to_owned(), q.schema()));
            ("Cadastral parcels", visible.collect())
        }
    };
    Ok(ok_json(
        "application/schema+json",
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": format!("{}/collections/{id}/queryables", call.base),
            "type": "object",
            "title": title,
            "properties": properties,
            "additionalProperties": false,
        }),
    ))
}

pub const SUBMIT_JOB: &[(&str, &str)] = &[];

/// `POST /jobs`: a multipart upload with the field `file` (a cadastral file, or a zip of one or
/// several) and optionally `mode` (`append`, the default, or `replace-commune`). Refused before
/// the body is read when the agency may not upload, has as many uploads as it may (429), or
/// declares a body over the size limit (413); the file is written to disk as it arrives, within
/// the size and time limits (`upload.rs`); the answer (202) names the job to follow.
pub async fn submit_job(
    State(app): State<Arc<AppState>>,
    access: Access,
    call: Call,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    call.params(SUBMIT_JOB)?;
    let target = app.sources.upload_store(&access)?;
    let limits = app.jobs.limits().upload;
    crate::upload::check_declared_size(request.headers(), &limits)?;
    let slot = app.jobs.admit(access.agency())?;
    let received = crate::upload::receive(request, &slot.dir, &limits).await?;
    let id = slot.id;
    let job = app.jobs.start(slot, received, &target)?;
    let mut response = crate::ogc::linked_json(StatusCode::ACCEPTED, JSON, job.status(&call.base));
    if let Ok(location) = axum::http::HeaderValue::from_str(&format!("{}/jobs/{id}", call.base)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

pub async fn job(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(id): Path<String>,
    call: Call,
) -> Result<Response, ApiError> {
    call.params(COMMON)?;
    Ok(ok_json(JSON, app.jobs.get(&id, &access)?.status(&call.base)))
}

/// The full report of a finished job.
pub async fn job_report(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(id): Path<String>,
    call: Call,
) -> Result<Response, ApiError> {
    call.params(COMMON)?;
    let job = app.jobs.get(&id, &access)?;
    let report = job.report().ok_or_else(|| {
        ApiError::not_found(format!("job {id} has no report: it is {}", serde_json::json!(job.state())))
    })?;
    Ok(ok_json(JSON, report))
}

/// The records a job's import rejected, as GeoJSON, for the province to fix and send again.
pub async fn job_quarantine(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(id): Path<String>,
    call: Call,
) -> Result<Response, ApiError> {
    call.params(COMMON)?;
    let job = app.jobs.get(&id, &access)?;
    let batch = job.batch().ok_or_else(|| {
        ApiError::not_found(format!(
            "job {id} committed no batch (it is {}): nothing was quarantined",
            serde_json::json!(job.state())
        ))
    })?;
    let body = crate::jobs::quarantine_geojson(app.sources.upload_store(&access)?.store, batch).await?;
    let mut response = ok_json(GEOJSON, body);
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("attachment; filename=\"job-{id}-rejected.geojson\"")) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Liveness, and what the server knows of its health: the store (reachable or not), how long the
/// engine has been behind the store's feed, the upload jobs queued and running. 200 while the
/// process lives.
pub async fn health(State(app): State<Arc<AppState>>) -> Response {
    ok_json(JSON, app.health.document(&app))
}

/// Ready while the store answers and the engine follows its feed (within the lag threshold);
/// otherwise 503 with the reason. Open to anyone, so it says nothing of what the store holds:
/// figures are for operators, at `/metrics`.
pub async fn ready(State(app): State<Arc<AppState>>) -> Response {
    match app.health.not_ready() {
        None => ok_json(JSON, json!({ "ready": true })),
        Some(reason) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            JSON,
            json!({ "ready": false, "reason": reason }).to_string(),
        ),
    }
}

/// Prometheus metrics: requests by route, the engine, the upload jobs.
pub async fn metrics(State(app): State<Arc<AppState>>, access: Access) -> Result<Response, ApiError> {
    use crate::metrics::gauge;
    let mut out = String::with_capacity(8 << 10);
    app.metrics.render(&mut out);
    let engine = app.sources.figures(&access)?;
    let audit = &app.gate.audit.state;
    gauge(
        &mut out,
        "landdb_audit_spooled_entries",
        "Audit entries waiting in the local spool for the primary.",
        audit.spooled() as f64,
    );
    gauge(
        &mut out,
        "landdb_audit_primary_away",
        "1 while the primary does not take audit entries (they go to the spool).",
        f64::from(u8::from(audit.away())),
    );
    if let Some(lag) = app.health.replica_lag() {
        gauge(
            &mut out,
            "landdb_replica_lag_changes",
            "Changes the primary committed that the read replica has not replayed.",
            lag as f64,
        );
    }
    gauge(&mut out, "landdb_engine_parcels", "Current parcels the engine holds.", engine.parcels as f64);
    gauge(
        &mut out,
        "landdb_engine_feed_position",
        "The change-feed position the engine reflects.",
        engine.position.0 as f64,
    );
    gauge(
        &mut out,
        "landdb_engine_heap_bytes",
        "Memory the engine's columns and index take.",
        engine.heap_bytes as f64,
    );
    out.push_str(
        "# HELP landdb_upload_jobs Upload jobs this process knows, by state.\n# TYPE landdb_upload_jobs gauge\n",
    );
    for (state, n) in app.jobs.count_by_state() {
        let _ = std::fmt::Write::write_fmt(&mut out, format_args!("landdb_upload_jobs{{state=\"{state}\"}} {n}\n"));
    }
    let mut response = axum::response::IntoResponse::into_response(out);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(response)
}

pub async fn openapi(call: Call) -> Result<Response, ApiError> {
    call.params(COMMON)?;
    Ok(ok_json(OPENAPI, crate::openapi::document(&call.base, MAX_LIMIT)))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such resource; the landing page at / lists what there is")
}

#[cfg(test)]
mod tests {
    use landdb_model::{CommuneCode, ParcelKey};

    #[test]
    fn the_crs84_header_names_crs84() {
        assert_eq!(super::CRS84_HEADER, format!("<{}>", crate::ogc::CRS84));
    }

    /// Each part of the key is one path segment whatever it holds, and reads back as it was.
    #[test]
    fn a_key_path_keeps_each_part_in_its_segment() {
        let commune = CommuneCode::parse("20227").expect("a commune code");
        let key = ParcelKey::new(commune, "F-48 / 7".to_owned(), "12a?#%ả".to_owned());
        let path = super::key_path(&key);
        assert_eq!(path, "/parcels/key/20227/F-48%20%2F%207/12a%3F%23%25%E1%BA%A3");
        let parts: Vec<String> = path
            .split('/')
            .skip(3)
            .map(|p| percent_encoding::percent_decode_str(p).decode_utf8().expect("UTF-8").into_owned())
            .collect();
        assert_eq!(parts, ["20227", "F-48 / 7", "12a?#%ả"]);
    }
}
