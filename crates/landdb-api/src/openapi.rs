//! The OpenAPI 3.0 document, written from the same parameter lists the handlers accept
//! ([`crate::routes`]), so that it describes exactly what the server takes.

use serde_json::{Value, json};

use crate::routes::{AT_POINT, BY_KEY, COMMON, EXPORT, HOLDER, ITEM, ITEMS, LANDING, REFERENCE_ITEMS};

fn parameters(list: &[(&str, &str)], path: &[(&str, &str)]) -> Value {
    let mut out: Vec<Value> = path
        .iter()
        .map(|(name, description)| {
            json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
        })
        .collect();
    for (name, description) in list {
        let schema = match *name {
            "limit" => {
                json!({ "type": "integer", "minimum": 1, "maximum": crate::params::MAX_LIMIT, "default": crate::params::DEFAULT_LIMIT })
            }
            "after" => json!({ "type": "string" }),
            "lon" | "lat" | "x" | "y" => json!({ "type": "number" }),
            // Four numbers, or six with heights (which parcels, being flat, ignore).
            "bbox" => json!({ "type": "array", "minItems": 4, "maxItems": 6, "items": { "type": "number" } }),
            "filter-lang" => json!({ "type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text" }),
            "bbox-crs" | "filter-crs" | "crs" => json!({ "type": "string", "format": "uri" }),
            "f" if list.len() == 1 && list[0].1.contains("html") => {
                json!({ "type": "string", "enum": ["json", "html"] })
            }
            "f" => json!({ "type": "string", "enum": ["json", "geojson"] }),
            _ => json!({ "type": "string" }),
        };
        // Form style, not exploded, for every query parameter: `bbox=1,2,3,4` (what OGC API –
        // Features requires of limit, bbox and datetime, and true of the rest).
        let required = matches!(*name, "lon" | "lat");
        out.push(json!({ "name": name, "in": "query", "required": required, "style": "form", "explode": false, "description": description, "schema": schema }));
    }
    Value::Array(out)
}

fn answer(description: &str, media_type: &str) -> Value {
    json!({
        "200": { "description": description, "content": { media_type: { "schema": { "type": "object" } } } },
        "400": { "description": "a parameter the endpoint does not take, or a value it cannot", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/exception" } } } },
        "401": { "description": "no valid API key (send `Authorization: Bearer <key>`)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/exception" } } } },
        "403": { "description": "the agency's policy does not allow this operation, or is not in force", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/exception" } } } },
        "404": { "description": "no such resource (a parcel outside the agency's area is not there for it)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/exception" } } } },
        "429": { "description": "over the agency's rate or daily quota; Retry-After says when to come back", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/exception" } } } },
    })
}

/// What only the API key matters for: the access rules (`access::requirement`) in the document.
fn with_security(mut doc: Value) -> Value {
    use crate::access::{Requirement, requirement};
    doc["security"] = json!([{ "bearer": [] }]);
    doc["components"]["securitySchemes"] = json!({ "bearer": { "type": "http", "scheme": "bearer", "description": "an API key from `landdb key create`" } });
    let admin = |summary: &str, method: &str, params: Value| json!({ method: { "summary": summary, "parameters": params, "responses": answer(summary, "application/json") } });
    let paths = &mut doc["paths"];
    paths["/admin/agencies"] = admin("the agencies with their policies and keys (operator)", "get", json!([]));
    paths["/admin/agencies"]["post"] = json!({
        "summary": "create an agency or replace its policy (operator)",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["name", "title", "role", "policy"] } } } },
        "responses": answer("the agency", "application/json"),
    });
    let name = parameters(&[], &[("name", "the agency")]);
    paths["/admin/agencies/{name}/keys"] = admin("a new key for the agency, shown once (operator)", "post", name);
    let id = parameters(&[], &[("id", "the key's id")]);
    paths["/admin/keys/{id}"] = admin("revoke the key at once (operator)", "delete", id.clone());
    paths["/admin/keys/{id}/rotate"] =
        admin("a new key replacing this one, which works for overlap_hours more (operator)", "post", id);
    paths["/admin/audit"] = admin(
        "audit entries by agency, period or disclosed parcel (operator)",
        "get",
        parameters(crate::admin::AUDIT, &[]),
    );
    paths["/admin/audit/verify"] = admin("follow the audit hash chain (operator)", "get", json!([]));
    if let Some(paths) = paths.as_object_mut() {
        for (path, item) in paths.iter_mut() {
            // The document's templates name parameters differently from the router's; only the
            // open routes matter here, and they have none.
            if requirement(&axum::http::Method::GET, path) == Requirement::Public
                && let Some(get) = item.get_mut("get")
            {
                get["security"] = json!([]);
            }
        }
    }
    doc
}

/// `POST /jobs`: the multipart upload.
fn upload() -> Value {
    json!({ "post": {
                "summary": "upload a cadastral file (or a zip) and start its import",
                "requestBody": { "required": true, "content": { "multipart/form-data": { "schema": {
                    "type": "object", "required": ["file"],
                    "properties": {
                        "file": { "type": "string", "format": "binary", "description": "a Shapefile (zipped), GeoPackage, GeoJSON, DXF, DGN, MapInfo TAB (zipped), KML or CSV file, or a zip of several" },
                        "mode": { "type": "string", "enum": ["append", "replace-commune"], "default": "append", "description": "append: new parcels only; replace-commune: the upload is the whole truth for its communes" },
                    },
                } } } },
                "responses": {
                    "202": { "description": "the job, started", "content": { "application/json": { "schema": { "type": "object" } } } },
                    "400": { "description": "no file, a file this server does not read, or an unknown field", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/exception" } } } },
                    "408": { "description": "the body stalled past the idle limit or took longer than the total limit", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/exception" } } } },
                    "409": { "description": "the same upload is already being imported (the answer names the job)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/exception" } } } },
                    "413": { "description": "larger than the server takes (refused from Content-Length, or as soon as the body passes it)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/exception" } } } },
                    "429": { "description": "the agency has as many uploads being received, queued or running as it may (Retry-After)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/exception" } } } },
                },
            } })
}

pub fn document(base: &str, max_limit: usize) -> Value {
    with_security(untagged(base, max_limit))
}

fn untagged(base: &str, max_limit: usize) -> Value {
    let get = |summary: &str, params: Value, media_type: &str| json!({ "get": { "summary": summary, "parameters": params, "responses": answer(summary, media_type) } });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "landdb",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("Vietnam's national land database as OGC API – Features. Pages hold at most {max_limit} parcels."),
        },
        "servers": [{ "url": base }],
        "paths": {
            "/": get("the landing page (HTML for a browser)", parameters(LANDING, &[]), "application/json"),
            "/conformance": get("the conformance classes", parameters(COMMON, &[]), "application/json"),
            "/api": get("this document", parameters(COMMON, &[]), "application/vnd.oai.openapi+json;version=3.0"),
            "/collections": get("the collections", parameters(COMMON, &[]), "application/json"),
            "/collections/{collectionId}": get("a collection", parameters(COMMON, &[("collectionId", "the collection: parcels")]), "application/json"),
            "/collections/{collectionId}/items": get("the parcels, a page at a time", parameters(ITEMS, &[("collectionId", "the collection: parcels")]), "application/geo+json"),
            "/collections/communes/items": get("the 2025 communes with their parcel counts, a page at a time", parameters(REFERENCE_ITEMS, &[]), "application/geo+json"),
            "/collections/land-use-codes/items": get("the land-use codes of both lists, a page at a time", parameters(REFERENCE_ITEMS, &[]), "application/geo+json"),
            "/collections/{collectionId}/items/{featureId}": get("one parcel version", parameters(ITEM, &[("collectionId", "the collection: parcels"), ("featureId", "the parcel version")]), "application/geo+json"),
            "/collections/{collectionId}/export": get("every selected parcel in one file: GeoJSON (streamed), GeoPackage, zipped Shapefile or DXF", parameters(EXPORT, &[("collectionId", "the collection: parcels")]), "application/geo+json"),
            "/collections/{collectionId}/changes": get("the changes to the parcels the agency may see, in commit order, after a snapshot of them: created, updated, entered (moved into its area), retired, left (moved out); resumable with the `next` token, long polling with `wait`", parameters(crate::feed::CHANGES, &[("collectionId", "the collection: parcels")]), "application/json"),
            "/collections/{collectionId}/items/{featureId}/history": get("every version the parcel ever had, with lineage", parameters(COMMON, &[("collectionId", "the collection: parcels"), ("featureId", "a parcel version")]), "application/json"),
            "/parcels/at": get("the parcels at a point", parameters(AT_POINT, &[]), "application/geo+json"),
            "/collections/{collectionId}/queryables": get("what filter and sortby can name, as a JSON Schema", parameters(COMMON, &[("collectionId", "the collection: parcels, communes or land-use-codes")]), "application/schema+json"),
            "/parcels/key/{commune}/{sheet}/{number}": get("the current parcel with a natural key", parameters(BY_KEY, &[("commune", "the 5-digit commune code"), ("sheet", "the map sheet number"), ("number", "the parcel number on the sheet")]), "application/geo+json"),
            "/parcels/national-id/{nationalId}": get("the current parcels with a national ID", parameters(ITEM, &[("nationalId", "the 12-character national parcel ID")]), "application/geo+json"),
            "/holders/{citizenId}/parcels": get("the parcels a citizen holds (and, with history=true, held), by their 12-digit citizen ID: for agencies granted holder-lookup, every lookup audited with its purpose; an ID not of the format (12 digits, 0 and a province code, a century-and-gender digit, a past birth year) is refused with 400", parameters(HOLDER, &[("citizenId", "the 12-digit citizen ID (số định danh cá nhân)")]), "application/geo+json"),
            "/collections/{collectionId}/tiles": get("the tile sets of the collection", parameters(COMMON, &[("collectionId", "the collection: parcels")]), "application/json"),
            "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}": get("a Mapbox Vector Tile of the current parcels", parameters(&[], &[("collectionId", "the collection: parcels"), ("tileMatrixSetId", "WebMercatorQuad"), ("tileMatrix", "the zoom level, 0 to 20 (parcels from 13)"), ("tileRow", "the row (y)"), ("tileCol", "the column (x)")]), "application/vnd.mapbox-vector-tile"),
            "/map": { "get": { "summary": "the parcel map (HTML)", "responses": { "200": { "description": "the page", "content": { "text/html": { "schema": { "type": "string" } } } } } } },
            "/upload": { "get": { "summary": "the upload page for province staff (HTML)", "responses": { "200": { "description": "the page", "content": { "text/html": { "schema": { "type": "string" } } } } } } },
            "/assets/{name}": { "get": { "summary": "the pages' scripts and styles, MapLibre GL JS included", "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }], "responses": { "200": { "description": "the file", "content": { "*/*": { "schema": { "type": "string" } } } }, "404": { "description": "no such asset" } } } },
            "/subscriptions": {
                "get": { "summary": "the agency's webhook subscriptions", "responses": { "200": { "description": "the subscriptions", "content": { "application/json": { "schema": { "type": "object" } } } } } },
                "post": { "summary": "a webhook subscription: the agency's change feed POSTed to `callback` (an allowed host), optionally only `communes`, `land_use` and what the CQL2 text `filter` matches (over the queryables); deliveries signed with the secret shown once (X-Landdb-Signature: sha256=HMAC-SHA256 of `timestamp.body`, X-Landdb-Timestamp, X-Landdb-Delivery the idempotency id)", "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["callback"], "properties": { "callback": { "type": "string" }, "communes": { "type": "array", "items": { "type": "string" } }, "land_use": { "type": "array", "items": { "type": "string" } }, "filter": { "type": "string", "description": "CQL2 text over the queryables (not valid_from or valid_to)" } } } } } }, "responses": { "201": { "description": "the subscription, with its secret", "content": { "application/json": { "schema": { "type": "object" } } } }, "400": { "description": "a callback to a host that is not allowed, or a filter that is not valid CQL2 over the queryables" } } },
            },
            "/subscriptions/{subscriptionId}": {
                "get": { "summary": "a subscription", "parameters": [{ "name": "subscriptionId", "in": "path", "required": true, "schema": { "type": "string" } }], "responses": { "200": { "description": "the subscription", "content": { "application/json": { "schema": { "type": "object" } } } }, "404": { "description": "no such subscription of the agency" } } },
                "delete": { "summary": "ends a subscription", "parameters": [{ "name": "subscriptionId", "in": "path", "required": true, "schema": { "type": "string" } }], "responses": { "200": { "description": "deleted" }, "404": { "description": "no such subscription of the agency" } } },
            },
            "/subscriptions/{subscriptionId}/dead-letters": get("the deliveries that failed every try, with their bodies", parameters(&[], &[("subscriptionId", "the subscription")]), "application/json"),
            "/subscriptions/{subscriptionId}/replay": { "post": { "summary": "delivers the dead letters again and resumes a paused subscription", "parameters": [{ "name": "subscriptionId", "in": "path", "required": true, "schema": { "type": "string" } }], "responses": { "200": { "description": "how many were delivered", "content": { "application/json": { "schema": { "type": "object" } } } } } } },
            "/jobs": upload(),
            "/jobs/{jobId}": get("an import job: its state, records read, verdict counts and changes", parameters(COMMON, &[("jobId", "the job")]), "application/json"),
            "/jobs/{jobId}/report": get("the full report of a finished job", parameters(COMMON, &[("jobId", "the job")]), "application/json"),
            "/jobs/{jobId}/quarantine": get("the records the job rejected, as read, with their reasons", parameters(COMMON, &[("jobId", "the job")]), "application/geo+json"),
            "/metrics": { "get": { "summary": "Prometheus metrics: requests by route and status class, latencies, engine and upload jobs", "responses": { "200": { "description": "the metrics", "content": { "text/plain": { "schema": { "type": "string" } } } } } } },
            "/health": { "get": { "summary": "the process is up; the store (reachable or not), the engine's lag behind the change feed, the upload jobs", "responses": { "200": { "description": "the process is up", "content": { "application/json": { "schema": { "type": "object" } } } } } } },
            "/ready": { "get": { "summary": "ready to answer: the store reachable and the engine following its change feed", "responses": { "200": { "description": "ready", "content": { "application/json": { "schema": { "type": "object" } } } }, "503": { "description": "not ready, with the reason", "content": { "application/json": { "schema": { "type": "object" } } } } } } },
        },
        "components": {
            "schemas": {
                "exception": {
                    "type": "object",
                    "required": ["code"],
                    "properties": { "code": { "type": "string" }, "description": { "type": "string" } },
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The document is OpenAPI 3.0 (as a strict reader takes it), every path parameter of a
    /// template is declared, and every endpoint lists exactly the query parameters its handler
    /// accepts.
    #[test]
    fn the_document_is_openapi_and_lists_every_accepted_parameter() {
        let doc = document("http://localhost:8080", crate::params::MAX_LIMIT);
        let parsed: Result<openapiv3::OpenAPI, _> = serde_json::from_value(doc.clone());
        assert!(parsed.is_ok(), "{parsed:?}");
        let paths = doc["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("operation") {
                let declared = |place: &str| -> BTreeSet<String> {
                    operation["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|p| p["in"] == place)
                        .map(|p| p["name"].as_str().expect("name").to_owned())
                        .collect()
                };
                let templated: BTreeSet<String> = path
                    .split('/')
                    .filter_map(|part| part.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
                    .map(str::to_owned)
                    .collect();
                assert_eq!(declared("path"), templated, "{method} {path}");
            }
        }
        let query = |path: &str| -> BTreeSet<String> {
            doc["paths"][path]["get"]["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .map(|p| p["name"].as_str().expect("name").to_owned())
                .collect()
        };
        let accepted =
            |list: &[(&str, &str)]| -> BTreeSet<String> { list.iter().map(|(n, _)| (*n).to_owned()).collect() };
        for (path, list) in [
            ("/", LANDING),
            ("/collections/{collectionId}/items", ITEMS),
            ("/collections/{collectionId}/items/{featureId}", ITEM),
            ("/collections/{collectionId}/export", EXPORT),
            ("/collections/{collectionId}/changes", crate::feed::CHANGES),
            ("/collections/communes/items", REFERENCE_ITEMS),
            ("/parcels/at", AT_POINT),
            ("/parcels/key/{commune}/{sheet}/{number}", BY_KEY),
            ("/holders/{citizenId}/parcels", HOLDER),
            ("/collections/{collectionId}/queryables", COMMON),
        ] {
            assert_eq!(query(path), accepted(list), "{path}");
        }
        assert_eq!(query("/admin/audit"), accepted(crate::admin::AUDIT));
        // A key everywhere (the document's default) but on the open routes.
        assert_eq!(doc["security"], json!([{ "bearer": [] }]));
        for open in ["/", "/conformance", "/api", "/health", "/ready", "/map"] {
            assert_eq!(doc["paths"][open]["get"]["security"], json!([]), "{open}");
        }
        assert!(doc["paths"]["/collections/{collectionId}/items"]["get"].get("security").is_none());
    }
}
