//! The endpoints. Each takes the caller's [`Access`] first, reads its parameters strictly
//! ([`Params`]) and answers from the engine's current view, going to the store only for what the
//! engine does not hold (retired versions).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::Response;
use landdb_engine::{Parcel, ParcelRecord, Snapshot, View};
use landdb_model::{CommuneCode, FeedPosition, NationalParcelId, VersionId};
use landdb_store::ParcelStore;
use serde_json::json;

use crate::AppState;
use crate::access::Access;
use crate::crs::OutputCrs;
use crate::export::{Selection, geojson_stream};
use crate::features::{Field, Output, write_feature};
use crate::ogc::{ApiError, CONFORMANCE, CRS84, GEOJSON, JSON, Link, OPENAPI, json_response};
use crate::params::{MAX_LIMIT, Params};
use crate::reference::ReferenceCollection;

/// The parameters each endpoint accepts, with what they mean: the handlers refuse any other, and
/// the OpenAPI document is written from the same lists.
pub const COMMON: &[(&str, &str)] = &[("f", "the format of the answer: `json` (the only one so far)")];
pub const ITEMS: &[(&str, &str)] = &[
    ("f", "the format of the answer: `json` (the only one so far)"),
    ("bbox", "west,south,east,north in longitude and latitude: parcels intersecting the box"),
    ("bbox-crs", "the coordinate system of bbox: CRS84 (the default) or EPSG:4326"),
    ("limit", "parcels a page, 1 to 10000 (larger values are lowered to 10000); 100 when absent"),
    ("after", "the version after which the page starts (the `next` link carries it)"),
    ("before", "the version before which the page ends (the `prev` link carries it)"),
    ("properties", "comma-separated property names to include"),
    (
        "crs",
        "the coordinate system of the answer: CRS84 (the default), EPSG 4326, 4756 (VN-2000), a VN-2000 TM-3 zone, 32648 or 32649",
    ),
];
pub const ITEM: &[(&str, &str)] = &[
    ("f", "the format of the answer: `json` (the only one so far)"),
    ("properties", "comma-separated property names to include"),
];
pub const EXPORT: &[(&str, &str)] = &[
    ("f", "the format of the export: `json` or `geojson` (GeoJSON, RFC 7946, in WGS84)"),
    ("commune", "only the parcels of this commune (5-digit code)"),
    ("bbox", "only the parcels intersecting west,south,east,north (longitude, latitude)"),
    ("bbox-crs", "the coordinate system of bbox: CRS84 (the default) or EPSG:4326"),
    ("properties", "comma-separated property names to include"),
    (
        "crs",
        "the coordinate system of the export: CRS84 (the default), EPSG 4326, 4756 (VN-2000), a VN-2000 TM-3 zone (what surveyors work in), 32648 or 32649",
    ),
];
pub const AT_POINT: &[(&str, &str)] = &[
    ("f", "the format of the answer: `json` (the only one so far)"),
    ("lon", "longitude (WGS84)"),
    ("lat", "latitude (WGS84)"),
    (
        "datetime",
        "an instant (RFC 3339, or a date for its midnight UTC): the parcels that held the point then, from the history",
    ),
    ("properties", "comma-separated property names to include"),
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
}

impl Call {
    fn params(&self, allowed: &[(&'static str, &str)]) -> Result<Params, ApiError> {
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
                format!("http://{host}")
            }
        };
        Ok(Call { base, query: parts.uri.query().map(str::to_owned) })
    }
}

fn ok_json(media_type: &'static str, body: serde_json::Value) -> Response {
    json_response(StatusCode::OK, media_type, body.to_string())
}

pub async fn landing(_access: Access, call: Call) -> Result<Response, ApiError> {
    call.params(COMMON)?;
    let base = &call.base;
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

pub async fn conformance(_access: Access, call: Call) -> Result<Response, ApiError> {
    call.params(COMMON)?;
    Ok(ok_json(JSON, json!({ "conformsTo": CONFORMANCE })))
}

fn parcels_collection(base: &str, view: &View, reference: &landdb_model::ReferenceData) -> serde_json::Value {
    let bbox = view.extent().map_or_else(
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
        ],
    })
}

pub async fn collections(State(app): State<Arc<AppState>>, _access: Access, call: Call) -> Result<Response, ApiError> {
    call.params(COMMON)?;
    let base = &call.base;
    let view = app.engine.snapshot();
    Ok(ok_json(
        JSON,
        json!({
            "links": [Link::new(format!("{base}/collections"), "self", JSON, "the collections")],
            "collections": std::iter::once(parcels_collection(base, &view, &app.reference))
                .chain(ReferenceCollection::ALL.into_iter().map(|c| reference_collection(base, c)))
                .collect::<Vec<_>>(),
        }),
    ))
}

pub async fn collection(
    State(app): State<Arc<AppState>>,
    _access: Access,
    Path(id): Path<String>,
    call: Call,
) -> Result<Response, ApiError> {
    call.params(COMMON)?;
    if let Some(c) = ReferenceCollection::of(&id) {
        return Ok(ok_json(JSON, reference_collection(&call.base, c)));
    }
    known_collection(&id)?;
    Ok(ok_json(JSON, parcels_collection(&call.base, &app.engine.snapshot(), &app.reference)))
}

fn known_collection(id: &str) -> Result<(), ApiError> {
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
        ],
    })
}

pub const REFERENCE_ITEMS: &[(&str, &str)] = &[
    ("f", "the format of the answer: `json` (the only one so far)"),
    ("limit", "features a page, 1 to 10000 (larger values are lowered to 10000); 100 when absent"),
    ("after", "the id after which the page starts (the `next` link carries it)"),
];

/// A page of a reference collection, by id.
fn reference_items(app: &AppState, c: ReferenceCollection, call: &Call) -> Result<Response, ApiError> {
    let params = call.params(REFERENCE_ITEMS)?;
    let limit = params.limit()?;
    let view = app.engine.snapshot();
    let all = c.features(&app.reference, &view);
    let start = params.get("after").map_or(0, |a| all.partition_point(|(id, _)| id.as_str() <= a));
    let page: Vec<&serde_json::Value> = all.iter().skip(start).take(limit).map(|(_, f)| f).collect();
    let base = &call.base;
    let id = c.id();
    let mut links = vec![Link::new(format!("{base}/collections/{id}"), "collection", JSON, "the collection")];
    let more = start + page.len() < all.len();
    if let (true, Some((last, _))) = (more, all.get((start + page.len()).saturating_sub(1))) {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        next.append_pair("limit", &limit.to_string()).append_pair("after", last);
        links.push(Link::new(
            format!("{base}/collections/{id}/items?{}", next.finish()),
            "next",
            GEOJSON,
            "the next page",
        ));
    }
    Ok(ok_json(
        GEOJSON,
        json!({
            "type": "FeatureCollection",
            "features": page,
            "numberMatched": all.len(),
            "numberReturned": page.len(),
            "links": links,
        }),
    ))
}

/// One feature of a reference collection.
fn reference_item(app: &AppState, c: ReferenceCollection, id: &str, call: &Call) -> Result<Response, ApiError> {
    call.params(COMMON)?;
    let view = app.engine.snapshot();
    c.features(&app.reference, &view)
        .into_iter()
        .find(|(i, _)| i == id)
        .map(|(_, f)| ok_json(GEOJSON, f))
        .ok_or_else(|| ApiError::not_found(format!("there is no `{id}` in {}", c.id())))
}

/// A feature collection of `parcels` with the envelope OGC API asks for.
fn feature_collection(
    parcels: &[Parcel<'_>],
    fields: &[Field],
    matched: Option<usize>,
    links: Vec<Link>,
    position: FeedPosition,
    crs: &OutputCrs,
) -> Result<Response, ApiError> {
    let transformer = crs.transformer()?;
    let output = Output { crs, transformer: transformer.as_ref() };
    let mut out: Vec<u8> = Vec::with_capacity(512 + parcels.len() * 1_200);
    let mut buf = Vec::new();
    out.extend_from_slice(b"{\"type\":\"FeatureCollection\",\"features\":[");
    for (i, p) in parcels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_feature(&mut out, p, fields, &mut buf, &output);
    }
    out.extend_from_slice(b"],");
    if let Some(n) = matched {
        out.extend_from_slice(format!("\"numberMatched\":{n},").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "\"numberReturned\":{},\"feedPosition\":{},\"links\":{}}}",
            parcels.len(),
            position.0,
            serde_json::to_value(links).unwrap_or_default()
        )
        .as_bytes(),
    );
    Ok(with_crs(json_response(StatusCode::OK, GEOJSON, out), crs))
}

/// Says which CRS the coordinates are in (OGC API – Features Part 2).
fn with_crs(mut response: Response, crs: &OutputCrs) -> Response {
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("<{}>", crs.uri)) {
        response.headers_mut().insert("content-crs", v);
    }
    response
}

/// The `crs` parameter.
fn output_crs(app: &AppState, params: &Params) -> Result<OutputCrs, ApiError> {
    params.get("crs").map_or_else(|| Ok(OutputCrs::crs84()), |raw| OutputCrs::parse(raw, &app.reference))
}

/// A query over a collection: its parameters, its box, and the properties the caller may see.
type CollectionQuery = (Params, Option<geo::Rect<f64>>, Vec<Field>);

/// What a query over a collection reads first, the collection checked.
fn collection_query(
    id: &str,
    call: &Call,
    allowed: &[(&'static str, &str)],
    access: &Access,
) -> Result<CollectionQuery, ApiError> {
    known_collection(id)?;
    let params = call.params(allowed)?;
    let bbox = params.bbox()?;
    let fields = Field::selected(params.get("properties"), access)?;
    Ok((params, bbox, fields))
}

pub async fn items(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(id): Path<String>,
    call: Call,
) -> Result<Response, ApiError> {
    if let Some(c) = ReferenceCollection::of(&id) {
        return reference_items(&app, c, &call);
    }
    let (params, bbox, fields) = collection_query(&id, &call, ITEMS, &access)?;
    let limit = params.limit()?;
    let crs = output_crs(&app, &params)?;
    let cursor = |name: &str| {
        params
            .get(name)
            .map(|raw| {
                raw.parse::<i64>().map(VersionId).map_err(|_| {
                    ApiError::bad_parameter(format!("{name}={raw}: give the version number a link carries"))
                })
            })
            .transpose()
    };
    let (after, before) = (cursor("after")?, cursor("before")?);
    if after.is_some() && before.is_some() {
        return Err(ApiError::bad_parameter("give `after` or `before`, not both"));
    }
    let view = app.engine.snapshot();
    // The page, and whether parcels lie before and after it.
    let (page, matched, earlier, later): (Vec<Parcel<'_>>, usize, bool, bool) = match bbox {
        Some(rect) => {
            let mut found = view.in_box(rect);
            found.sort_unstable_by_key(|p| p.version());
            let n = found.len();
            let (start, end) = match (after, before) {
                (_, Some(b)) => {
                    let end = found.partition_point(|p| p.version() < b);
                    (end.saturating_sub(limit), end)
                }
                (a, None) => {
                    let start = a.map_or(0, |a| found.partition_point(|p| p.version() <= a));
                    (start, (start + limit).min(n))
                }
            };
            (found[start..end].to_vec(), n, start > 0, end < n)
        }
        None => match before {
            Some(b) => {
                let mut page: Vec<Parcel<'_>> = view.parcels_before(b).take(limit + 1).collect();
                let earlier = page.len() > limit;
                page.truncate(limit);
                page.reverse();
                let later = page.last().is_some_and(|p| view.parcels_after(Some(p.version())).next().is_some());
                (page, view.len(), earlier, later)
            }
            None => {
                let mut page: Vec<Parcel<'_>> = view.parcels_after(after).take(limit + 1).collect();
                let later = page.len() > limit;
                page.truncate(limit);
                let earlier = page.first().is_some_and(|p| view.parcels_before(p.version()).next().is_some());
                (page, view.len(), earlier, later)
            }
        },
    };
    let base = &call.base;
    // The links repeat every parameter but the cursor, so a page cannot widen the query.
    let mut kept = url::form_urlencoded::Serializer::new(String::new());
    for (name, _) in ITEMS {
        if let (true, Some(v)) = (!matches!(*name, "after" | "before"), params.get(name)) {
            kept.append_pair(name, v);
        }
    }
    let kept = kept.finish();
    let with = |extra: Option<String>| {
        let mut q = kept.clone();
        if let Some(e) = extra {
            if !q.is_empty() {
                q.push('&');
            }
            q.push_str(&e);
        }
        if q.is_empty() {
            format!("{base}/collections/parcels/items")
        } else {
            format!("{base}/collections/parcels/items?{q}")
        }
    };
    let this = after.map(|a| format!("after={}", a.0)).or_else(|| before.map(|b| format!("before={}", b.0)));
    let mut links = vec![
        Link::new(with(this), "self", GEOJSON, "this page"),
        Link::new(format!("{base}/collections/parcels"), "collection", JSON, "the collection"),
    ];
    if let (true, Some(last)) = (later, page.last()) {
        links.push(Link::new(with(Some(format!("after={}", last.version().0))), "next", GEOJSON, "the next page"));
    }
    if let (true, Some(first)) = (earlier, page.first()) {
        links.push(Link::new(
            with(Some(format!("before={}", first.version().0))),
            "prev",
            GEOJSON,
            "the previous page",
        ));
    }
    feature_collection(&page, &fields, Some(matched), links, view.position(), &crs)
}

pub async fn item(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path((collection, id)): Path<(String, String)>,
    call: Call,
) -> Result<Response, ApiError> {
    if let Some(c) = ReferenceCollection::of(&collection) {
        return reference_item(&app, c, &id, &call);
    }
    known_collection(&collection)?;
    let params = call.params(ITEM)?;
    let fields = Field::selected(params.get("properties"), &access)?;
    let missing = || ApiError::not_found(format!("there is no parcel version {id}"));
    let version = VersionId(id.parse::<i64>().map_err(|_| missing())?);
    let base = &call.base;
    let view = app.engine.snapshot();
    let mut out = Vec::new();
    let links = |out: &mut Vec<u8>| {
        let links = [
            Link::new(format!("{base}/collections/parcels/items/{id}"), "self", GEOJSON, "this parcel"),
            Link::new(format!("{base}/collections/parcels"), "collection", JSON, "the collection"),
        ];
        // Drop the closing brace, add the links, close again.
        out.pop();
        out.extend_from_slice(format!(",\"links\":{}}}", serde_json::to_string(&links).unwrap_or_default()).as_bytes());
    };
    if let Some(p) = view.by_version(version) {
        write_feature(&mut out, &p, &fields, &mut Vec::new(), &Output { crs: &OutputCrs::crs84(), transformer: None });
        links(&mut out);
        return Ok(json_response(StatusCode::OK, GEOJSON, out));
    }
    // Not current: an earlier version, from the store.
    let stored = app.store.versions(&[version]).await.map_err(|e| ApiError::internal(&e))?;
    let Some(v) = stored.into_iter().next() else { return Err(missing()) };
    let one = Snapshot::build([ParcelRecord::from(v)], view.position());
    let Some(p) = one.parcels().next() else { return Err(missing()) };
    write_feature(&mut out, &p, &fields, &mut Vec::new(), &Output { crs: &OutputCrs::crs84(), transformer: None });
    links(&mut out);
    Ok(json_response(StatusCode::OK, GEOJSON, out))
}

/// The whole selection as one GeoJSON file, streamed: constant memory whatever its size.
pub async fn export(
    State(app): State<Arc<AppState>>,
    access: Access,
    Path(id): Path<String>,
    call: Call,
) -> Result<Response, ApiError> {
    let (params, bbox, fields) = collection_query(&id, &call, EXPORT, &access)?;
    let commune = params
        .get("commune")
        .map(|c| {
            CommuneCode::parse(c)
                .map_err(|_| ApiError::bad_parameter(format!("commune={c}: give a 5-digit commune code")))
        })
        .transpose()?;
    let crs = output_crs(&app, &params)?;
    // Built once here so that a CRS PROJ cannot handle fails before the answer starts.
    crs.transformer()?;
    let view = app.engine.snapshot();
    let selection = Selection::of(&view, commune.as_ref(), bbox);
    let body = axum::body::Body::from_stream(geojson_stream(view, selection, fields, crs.clone()));
    let mut response = with_crs(json_response(StatusCode::OK, GEOJSON, body), &crs);
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        axum::http::HeaderValue::from_static("attachment; filename=\"parcels.geojson\""),
    );
    Ok(response)
}

/// Parcels at a point: the lookup agencies make most.
pub async fn at_point(State(app): State<Arc<AppState>>, access: Access, call: Call) -> Result<Response, ApiError> {
    let params = call.params(AT_POINT)?;
    let (lon, lat) = (params.number("lon")?, params.number("lat")?);
    if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
        return Err(ApiError::bad_parameter(format!("lon={lon}, lat={lat} is not a WGS84 position")));
    }
    let fields = Field::selected(params.get("properties"), &access)?;
    let view = app.engine.snapshot();
    let base = &call.base;
    let links = vec![Link::new(format!("{base}/parcels/at?lon={lon}&lat={lat}"), "self", GEOJSON, "this lookup")];
    if let Some(raw) = params.get("datetime") {
        // On a past date: from the store's history (rarer, and not in memory).
        let when = instant(raw)?;
        let versions = app.store.at_point_on(lon, lat, when).await.map_err(|e| ApiError::internal(&e))?;
        let then = Snapshot::build(versions.into_iter().map(ParcelRecord::from), view.position());
        let found: Vec<Parcel<'_>> = then.parcels().collect();
        return feature_collection(&found, &fields, Some(found.len()), links, view.position(), &OutputCrs::crs84());
    }
    let mut found = view.at_point(lon, lat);
    found.sort_unstable_by_key(|p| p.version());
    feature_collection(&found, &fields, Some(found.len()), links, view.position(), &OutputCrs::crs84())
}

/// An instant: RFC 3339, or a date (its midnight, UTC).
fn instant(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
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
    _access: Access,
    Path((collection, id)): Path<(String, String)>,
    call: Call,
) -> Result<Response, ApiError> {
    known_collection(&collection)?;
    call.params(COMMON)?;
    let missing = || ApiError::not_found(format!("there is no parcel version {id}"));
    let version = VersionId(id.parse::<i64>().map_err(|_| missing())?);
    let store = &app.store;
    let this = store.version(version).await.map_err(|e| ApiError::internal(&e))?.ok_or_else(missing)?;
    let versions = store.history(&this.parcel.key).await.map_err(|e| ApiError::internal(&e))?;
    let base = &call.base;
    let mut entries = Vec::with_capacity(versions.len());
    for v in &versions {
        let successors = store.successors(v.id).await.map_err(|e| ApiError::internal(&e))?;
        entries.push(json!({
            "version": v.id.0,
            "valid_from": v.valid_from,
            "valid_to": v.valid_to,
            "batch": v.batch.0,
            "national_id": v.parcel.national_id.as_str(),
            "area_m2": (v.parcel.geometry_area_m2 * 1e4).round() / 1e4,
            "came_from": v.lineage.iter().map(|l| l.0).collect::<Vec<_>>(),
            "went_to": successors.iter().map(|s| s.0).collect::<Vec<_>>(),
            "href": format!("{base}/collections/parcels/items/{}", v.id.0),
        }));
    }
    let key = &this.parcel.key;
    Ok(ok_json(
        JSON,
        json!({
            "key": { "commune": key.commune.as_str(), "sheet": key.sheet, "number": key.number },
            "versions": entries,
            "links": [
                Link::new(format!("{base}/collections/parcels/items/{id}/history"), "self", JSON, "this history"),
                Link::new(format!("{base}/collections/parcels/items/{id}"), "about", GEOJSON, "the version asked about"),
            ],
        }),
    ))
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
    let view = app.engine.snapshot();
    let mut found = view.by_national_id(&national_id);
    if found.is_empty() {
        return Err(ApiError::not_found(format!("no current parcel has the national ID {national_id}")));
    }
    found.sort_unstable_by_key(|p| p.version());
    let base = &call.base;
    let links = vec![Link::new(format!("{base}/parcels/national-id/{national_id}"), "self", GEOJSON, "this lookup")];
    feature_collection(&found, &fields, Some(found.len()), links, view.position(), &OutputCrs::crs84())
}

pub async fn health() -> &'static str {
    "ok"
}

/// Ready once the engine is loaded: the parcels it holds and the feed position it reflects.
pub async fn ready(State(app): State<Arc<AppState>>) -> Response {
    let view = app.engine.snapshot();
    ok_json(JSON, json!({ "ready": true, "parcels": view.len(), "feedPosition": view.position().0 }))
}

pub async fn openapi(call: Call) -> Result<Response, ApiError> {
    call.params(COMMON)?;
    Ok(ok_json(OPENAPI, crate::openapi::document(&call.base, MAX_LIMIT)))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such resource; the landing page at / lists what there is")
}
