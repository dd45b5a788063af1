//! The collections beside the parcels: the 2025 communes (with how many of the caller's current
//! parcels each holds and their extent) and the land-use codes of both official lists. Reference data,
//! served as features without geometry, a keyset page at a time by code, selected by `bbox` (a
//! commune by the extent of the caller's parcels in it; a land-use code has none), `datetime` (a
//! land-use code by the period its list was in force; a commune has none) and CQL2 `filter` over
//! their properties, as OGC API – Features asks of every collection.

use landdb_model::{CommuneCode, ReferenceData};
use serde_json::{Value, json};

use crate::ogc::ApiError;
use crate::params::BoxQuery;
use crate::scope::Scoped;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceCollection {
    Communes,
    LandUseCodes,
}

impl ReferenceCollection {
    pub const ALL: [ReferenceCollection; 2] = [ReferenceCollection::Communes, ReferenceCollection::LandUseCodes];

    pub fn of(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.id() == id)
    }

    pub fn id(self) -> &'static str {
        match self {
            ReferenceCollection::Communes => "communes",
            ReferenceCollection::LandUseCodes => "land-use-codes",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ReferenceCollection::Communes => "Communes (2025)",
            ReferenceCollection::LandUseCodes => "Land-use codes",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            ReferenceCollection::Communes => {
                "The communes after 1 July 2025 (mã xã), their province, how many of your current parcels each holds and their extent. \
                 No legal boundaries: a commune's geometry is the outline of your parcels in it, on pages of up to 100 communes."
            }
            ReferenceCollection::LandUseCodes => {
                "The land-use codes (mục đích sử dụng đất) of the 2014–2024 list and of Circular 08/2024, with the period each list was in force."
            }
        }
    }

    /// Every feature, in the order of its id (the keyset of the pages); communes without their
    /// parcels (see [`ReferenceCollection::with_parcels`]).
    pub fn features(self, reference: &ReferenceData) -> Vec<(String, Value)> {
        let mut features: Vec<(String, Value)> = match self {
            ReferenceCollection::Communes => reference
                .communes()
                .map(|c| {
                    let id = c.code.as_str().to_owned();
                    let feature = json!({
                        "type": "Feature",
                        "id": id,
                        "geometry": null,
                        "properties": {
                            "code": c.code.as_str(),
                            "name": c.name,
                            "province": c.province_code.as_str(),
                        },
                    });
                    (id, feature)
                })
                .collect(),
            ReferenceCollection::LandUseCodes => reference
                .land_use_codes()
                .map(|u| {
                    let id = format!("{}:{}", u.list, u.code.as_str());
                    let feature = json!({
                        "type": "Feature",
                        "id": id,
                        "geometry": null,
                        "properties": {
                            "code": u.code.as_str(),
                            "list": u.list,
                            "name": u.name,
                            "group": u.group,
                            "valid_from": u.valid_from,
                            "valid_to": u.valid_to,
                        },
                    });
                    (id, feature)
                })
                .collect(),
        };
        features.sort_by(|a, b| a.0.cmp(&b.0));
        features
    }

    /// What `filter` can name, with its JSON Schema (the queryables document).
    pub fn queryables(self) -> Vec<(&'static str, Value)> {
        let text = |title: &str| json!({ "type": "string", "title": title });
        match self {
            ReferenceCollection::Communes => vec![
                ("code", text("the 5-digit commune code (mã xã)")),
                ("name", text("the commune's name")),
                ("province", text("the 2-digit province code")),
                ("parcels", json!({ "type": "integer", "title": "the caller's current parcels in the commune" })),
            ],
            ReferenceCollection::LandUseCodes => vec![
                ("code", text("the land-use code")),
                ("list", text("the list: legacy (2014–2024) or 2024 (Circular 08/2024)")),
                ("name", text("what the code means")),
                ("group", text("agricultural, non-agricultural or unused land")),
                (
                    "valid_from",
                    json!({ "type": "string", "format": "date", "title": "when the list came into force", "x-ogc-role": "primary-instant" }),
                ),
                (
                    "valid_to",
                    json!({ "type": ["string", "null"], "format": "date", "title": "when the list ceased to be in force" }),
                ),
            ],
        }
    }

    /// Whether the collection's features have a place (only communes: the extent of the
    /// caller's parcels in them).
    fn spatial(self) -> bool {
        self == ReferenceCollection::Communes
    }

    /// The period a feature is about, when it has one (a land-use code: its list's validity).
    fn period(self, feature: &Value) -> Option<(chrono::NaiveDate, Option<chrono::NaiveDate>)> {
        let date = |v: &Value| v.as_str().and_then(|s| s.parse::<chrono::NaiveDate>().ok());
        match self {
            ReferenceCollection::Communes => None,
            ReferenceCollection::LandUseCodes => {
                let p = &feature["properties"];
                Some((date(&p["valid_from"])?, date(&p["valid_to"])))
            }
        }
    }

    /// A commune's feature with how many of the caller's parcels it holds (those filed under
    /// the codes merged into it included) and their extent: counted over the caller's area only,
    /// so a commune outside it shows none.
    pub fn with_parcels(self, id: &str, mut feature: Value, scoped: &Scoped<'_>, reference: &ReferenceData) -> Value {
        let ReferenceCollection::Communes = self else { return feature };
        let Ok(code) = CommuneCode::parse(id) else { return feature };
        let (count, extent) = scoped.commune_summary(&code, reference);
        feature["properties"]["parcels"] = json!(count);
        if let Some(e) = extent {
            feature["bbox"] = json!([e.min().x, e.min().y, e.max().x, e.max().y]);
        }
        feature
    }
}

/// The largest page of communes whose features carry their outlines (a map's view holds a few
/// dozen): larger pages carry none, so that no request outlines a whole country's communes.
pub const OUTLINED_PAGE: usize = 100;

impl ReferenceCollection {
    /// A commune `feature` with the outline of the caller's parcels in it as its geometry
    /// ([`Scoped::outline`]); others as they are. For the features that are answered, not
    /// for those a selection only judges.
    pub fn with_outline(self, mut feature: Value, scoped: &Scoped<'_>, reference: &ReferenceData) -> Value {
        let ReferenceCollection::Communes = self else { return feature };
        let Some(code) = feature["id"].as_str().and_then(|id| CommuneCode::parse(id).ok()) else { return feature };
        if let Some(outline) = scoped.outline(&code, reference) {
            let ring = |r: &geo::LineString<f64>| -> Vec<[f64; 2]> { r.coords().map(|c| [c.x, c.y]).collect() };
            let rings: Vec<Vec<[f64; 2]>> =
                std::iter::once(outline.exterior()).chain(outline.interiors()).map(ring).collect();
            feature["geometry"] = json!({ "type": "Polygon", "coordinates": rings });
        }
        feature
    }
}

/// What a page of a reference collection is selected by, read and checked first.
#[derive(Debug, Default)]
pub struct Selection {
    pub bbox: Option<BoxQuery>,
    pub datetime: Option<landdb_store::Period>,
    pub filter: Option<cql2::Expr>,
}

impl Selection {
    /// Every property `filter` names.
    fn named(&self) -> Vec<String> {
        let mut named = Vec::new();
        if let Some(expr) = &self.filter {
            properties(&serde_json::to_value(expr).unwrap_or_default(), &mut named);
        }
        named
    }

    /// Checks that `filter` names only the collection's queryables.
    pub fn check(&self, c: ReferenceCollection) -> Result<(), ApiError> {
        let names: Vec<&str> = c.queryables().iter().map(|(n, _)| *n).collect();
        if let Some(unknown) = self.named().iter().find(|n| !names.contains(&n.as_str())) {
            return Err(ApiError::bad_parameter(format!(
                "filter: `{unknown}` is not a queryable of {}; its queryables are {} (/collections/{}/queryables)",
                c.id(),
                names.join(", "),
                c.id()
            )));
        }
        Ok(())
    }

    /// Whether a feature must carry the caller's parcels (their count and extent, see
    /// [`ReferenceCollection::with_parcels`]) before it is judged: a commune, asked by a box or by
    /// a filter naming `parcels`.
    pub fn needs_parcels(&self, c: ReferenceCollection) -> bool {
        c == ReferenceCollection::Communes && (self.bbox.is_some() || self.named().iter().any(|n| n == "parcels"))
    }

    /// Whether anything selects: without, every feature is in the answer.
    pub fn is_empty(&self) -> bool {
        self.bbox.is_none() && self.datetime.is_none() && self.filter.is_none()
    }

    /// Whether `feature` (of collection `c`, with its parcels when a commune) is selected. A
    /// feature without a place is outside every box, one without a period outside every
    /// `datetime` (OGC API – Features: only features whose geometry or time meets them).
    pub fn admits(&self, c: ReferenceCollection, feature: &Value) -> bool {
        if let Some(b) = &self.bbox {
            let extent = feature["bbox"].as_array().and_then(|v| {
                let n: Vec<f64> = v.iter().filter_map(Value::as_f64).collect();
                (n.len() == 4).then(|| geo::Rect::new((n[0], n[1]), (n[2], n[3])))
            });
            let meets =
                c.spatial() && extent.is_some_and(|e| b.parts().any(|p| crate::filter::overlap(p, e).is_some()));
            if !meets {
                return false;
            }
        }
        if let Some(asked) = &self.datetime {
            let Some((from, to)) = c.period(feature) else { return false };
            let starts = from.and_time(chrono::NaiveTime::MIN).and_utc();
            let ends = to.map(|t| t.and_time(chrono::NaiveTime::MIN).and_utc());
            let after_end = asked.start.zip(ends).is_some_and(|(s, e)| s >= e);
            let before_start = asked.end.is_some_and(|e| e < starts);
            if after_end || before_start {
                return false;
            }
        }
        self.filter.as_ref().is_none_or(|f| f.clone().matches(Some(feature)).unwrap_or(false))
    }
}

/// Every property a CQL2 JSON expression names.
fn properties(expr: &Value, out: &mut Vec<String>) {
    match expr {
        Value::Object(o) => {
            if let Some(Value::String(p)) = o.get("property") {
                out.push(p.clone());
            }
            o.values().for_each(|v| properties(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| properties(v, out)),
        _ => {}
    }
}
