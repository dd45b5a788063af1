//! The collections beside the parcels: the 2025 communes (with how many of the caller's current
//! parcels each holds and their extent) and the land-use codes of both official lists. Reference data,
//! served as features without geometry, a keyset page at a time by code.

use landdb_model::{CommuneCode, ReferenceData};
use serde_json::{Value, json};

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
                "The communes after 1 July 2025 (mã xã), their province, how many current parcels each holds and their extent; no boundaries."
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

    /// A commune's feature with how many of the caller's parcels it holds (those filed under
    /// the codes merged into it included) and their extent: counted over the caller's area only,
    /// so a commune outside it shows none.
    pub fn with_parcels(self, id: &str, mut feature: Value, scoped: &Scoped<'_>, reference: &ReferenceData) -> Value {
        let ReferenceCollection::Communes = self else { return feature };
        let Ok(code) = CommuneCode::parse(id) else { return feature };
        let parcels = scoped.in_commune(&code, reference);
        feature["properties"]["parcels"] = json!(parcels.len());
        let extent = parcels.iter().filter_map(landdb_engine::Parcel::bounds).reduce(crate::filter::union);
        if let Some(e) = extent {
            feature["bbox"] = json!([e.min().x, e.min().y, e.max().x, e.max().y]);
        }
        feature
    }
}
