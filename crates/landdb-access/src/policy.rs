//! What an agency may do: its role, the area it sees, whether it sees personal data, the
//! operations it may call, its limits, when its access is valid, and the legal purpose recorded
//! with each access. A policy is data (JSON in the store); [`Scope`] is its area compiled against
//! the reference data for the per-parcel check.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use geo::{BoundingRect, Intersects, MultiPolygon, Rect};
use landdb_model::{CommuneCode, ProvinceCode, ReferenceData, reference::CommuneResolution};
use serde::{Deserialize, Serialize};

use crate::AccessError;

/// What an agency is, which sets its default operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The national data centre: every operation, the admin API, the audit.
    Operator,
    /// A provincial land office: uploads for its own province's communes.
    Uploader,
    /// An agency that looks parcels up (tax, notaries, police, courts).
    Reader,
    /// A surveyor: lookups and exports.
    Surveyor,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Operator, Role::Uploader, Role::Reader, Role::Surveyor];

    pub fn name(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Uploader => "uploader",
            Role::Reader => "reader",
            Role::Surveyor => "surveyor",
        }
    }

    pub fn parse(raw: &str) -> Result<Role, AccessError> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == raw)
            .ok_or_else(|| AccessError::Invalid(format!("role `{raw}`: give operator, uploader, reader or surveyor")))
    }

    /// The operations an agency of this role gets when its policy names none.
    pub fn default_operations(self) -> BTreeSet<Operation> {
        use Operation::*;
        match self {
            // Lookups by citizen are asked for, never implied: not even the data centre's own.
            Role::Operator => Operation::ALL.into_iter().filter(|o| *o != HolderLookup).collect(),
            Role::Uploader => [Lookup, Items, History, Upload].into_iter().collect(),
            Role::Reader => [Lookup, Items].into_iter().collect(),
            Role::Surveyor => [Lookup, Items, Export].into_iter().collect(),
        }
    }
}

/// Something a caller does with parcel data; each endpoint needs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// One parcel: by point, key, national ID or version.
    Lookup,
    /// Pages of parcels (items, vector tiles).
    Items,
    /// A file of the parcels in a commune, box, polygon or filter, up to the response limit.
    Export,
    /// Exports without the response limit.
    BulkExport,
    /// Earlier versions and lineage.
    History,
    /// Uploads (import jobs), their reports and quarantines.
    Upload,
    /// The parcels a citizen holds, asked by their citizen ID (`/holders/{citizen_id}/parcels`):
    /// personal data by its nature, so only with personal data granted.
    HolderLookup,
}

impl Operation {
    pub const ALL: [Operation; 7] = [
        Operation::Lookup,
        Operation::Items,
        Operation::Export,
        Operation::BulkExport,
        Operation::History,
        Operation::Upload,
        Operation::HolderLookup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::Lookup => "lookup",
            Operation::Items => "items",
            Operation::Export => "export",
            Operation::BulkExport => "bulk-export",
            Operation::History => "history",
            Operation::Upload => "upload",
            Operation::HolderLookup => "holder-lookup",
        }
    }

    pub fn parse(raw: &str) -> Result<Operation, AccessError> {
        Operation::ALL.into_iter().find(|o| o.name() == raw).ok_or_else(|| {
            AccessError::Invalid(format!("operation `{raw}`: give {}", Operation::ALL.map(Operation::name).join(", ")))
        })
    }
}

/// The area whose parcels an agency sees. There is no empty default: a policy names its area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Area {
    /// The whole country (the national operator, national agencies).
    Nation,
    /// These provinces (2-digit codes after the 2025 merger).
    Provinces { codes: Vec<String> },
    /// These communes (5-digit codes).
    Communes { codes: Vec<String> },
    /// The parcels meeting this polygon (WKT, longitude/latitude).
    Polygon { wkt: String },
}

/// How much an agency may take. `None` is no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub requests_per_second: Option<f64>,
    pub features_per_response: Option<u64>,
    pub features_per_day: Option<u64>,
}

/// An agency's policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub area: Area,
    /// Whether the agency sees personal data (addresses, right holders).
    #[serde(default)]
    pub personal_data: bool,
    pub operations: BTreeSet<Operation>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub valid_from: Option<DateTime<Utc>>,
    #[serde(default)]
    pub valid_until: Option<DateTime<Utc>>,
    /// The legal basis for the access, recorded with every audit entry.
    pub purpose: String,
}

impl Policy {
    /// Whether the policy is in force at `now`.
    pub fn in_force(&self, now: DateTime<Utc>) -> bool {
        self.valid_from.is_none_or(|f| now >= f) && self.valid_until.is_none_or(|u| now < u)
    }

    pub fn allows(&self, op: Operation) -> bool {
        self.operations.contains(&op)
    }
}

/// What a change-feed follower's copy is made under: the area and whether it holds personal data.
/// Its fingerprint goes in the follower's tokens; when the agency's policy changes either, the
/// next page compares the two (see the API's `feed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowedScope {
    pub area: Area,
    pub personal_data: bool,
}

impl FollowedScope {
    pub fn of(policy: &Policy) -> FollowedScope {
        FollowedScope { area: policy.area.clone(), personal_data: policy.personal_data }
    }

    /// A hash of the area and the grant: equal scopes, equal fingerprints.
    pub fn fingerprint(&self) -> u64 {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(serde_json::to_vec(&self.area).unwrap_or_default());
        hash.update([u8::from(self.personal_data)]);
        u64::from_be_bytes(hash.finalize()[..8].try_into().unwrap_or_default())
    }
}

/// An organisation with its policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agency {
    /// A short stable name (`tax-danang`), what keys and audit entries name.
    pub name: String,
    pub title: String,
    pub role: Role,
    pub policy: Policy,
    pub created_at: DateTime<Utc>,
}

impl Agency {
    /// Checks what the store cannot: a usable name, a purpose, an area that compiles.
    pub fn validate(&self, reference: &ReferenceData) -> Result<(), AccessError> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(AccessError::Invalid(format!(
                "agency name `{}`: use lower-case letters, digits and hyphens (as tax-danang)",
                self.name
            )));
        }
        if self.policy.purpose.trim().is_empty() {
            return Err(AccessError::Invalid(format!(
                "agency {}: give the legal purpose of its access (it is recorded with every request)",
                self.name
            )));
        }
        if self.policy.allows(Operation::HolderLookup) && !self.policy.personal_data {
            return Err(AccessError::Invalid(format!(
                "agency {}: holder-lookup answers which parcels a citizen holds, which is personal data: grant personal data too, or leave holder-lookup out",
                self.name
            )));
        }
        Scope::compile(&self.policy.area, reference).map(|_| ())
    }
}

/// An area compiled for the check each parcel passes: a set of commune codes (with the codes of
/// the communes merged into them in 2025, which older files still carry), or a polygon.
#[derive(Debug, Clone)]
pub enum Scope {
    Nation,
    Communes(HashSet<CommuneCode>),
    Polygon { shape: MultiPolygon<f64>, bounds: Rect<f64> },
}

impl Scope {
    pub fn compile(area: &Area, reference: &ReferenceData) -> Result<Scope, AccessError> {
        let with_merged = |codes: Vec<CommuneCode>| -> HashSet<CommuneCode> {
            let mut set: HashSet<CommuneCode> = HashSet::new();
            for c in codes {
                set.extend(reference.old_codes_merged_into(&c));
                set.insert(c);
            }
            set
        };
        Ok(match area {
            Area::Nation => Scope::Nation,
            Area::Provinces { codes } => {
                let mut provinces = HashSet::new();
                for raw in codes {
                    let code = ProvinceCode::parse(raw)
                        .ok()
                        .filter(|c| reference.province(c).is_some())
                        .ok_or_else(|| AccessError::Invalid(format!("province `{raw}`: not a province code")))?;
                    provinces.insert(code);
                }
                let communes: Vec<CommuneCode> = reference
                    .communes()
                    .filter(|c| provinces.contains(&c.province_code))
                    .map(|c| c.code.clone())
                    .collect();
                Scope::Communes(with_merged(communes))
            }
            Area::Communes { codes } => {
                let parsed = codes
                    .iter()
                    .map(|raw| {
                        let code = CommuneCode::parse(raw)
                            .map_err(|_| AccessError::Invalid(format!("commune `{raw}`: not a commune code")))?;
                        if reference.commune(&code).is_some() {
                            return Ok(code);
                        }
                        // An old code: name the 2025 commune(s) it went into.
                        Err(AccessError::Invalid(match reference.resolve_commune(&code) {
                            CommuneResolution::MergedInto(c) => format!(
                                "commune `{raw}`: merged into {c} in 2025; give {c} (its area holds the parcels still coded {raw})"
                            ),
                            CommuneResolution::SplitAmong(cs) => {
                                let cs: Vec<&str> = cs.iter().map(CommuneCode::as_str).collect();
                                format!("commune `{raw}`: split among {} in 2025; give those", cs.join(", "))
                            }
                            _ => format!("commune `{raw}`: not a commune code"),
                        }))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Scope::Communes(with_merged(parsed))
            }
            Area::Polygon { wkt } => {
                let shape = parse_polygon(wkt)?;
                let bounds = shape
                    .bounding_rect()
                    .ok_or_else(|| AccessError::Invalid("the area polygon is empty".to_owned()))?;
                Scope::Polygon { shape, bounds }
            }
        })
    }

    /// Whether a parcel of this commune with this boundary is in scope; the boundary is only
    /// asked for (it costs a decode) when the scope is a polygon.
    pub fn sees(&self, commune: &CommuneCode, boundary: impl FnOnce() -> MultiPolygon<f64>) -> bool {
        match self {
            Scope::Nation => true,
            Scope::Communes(set) => set.contains(commune),
            Scope::Polygon { shape, bounds } => {
                let boundary = boundary();
                boundary.bounding_rect().is_some_and(|b| b.intersects(bounds)) && shape.intersects(&boundary)
            }
        }
    }

    /// The box every visible parcel meets, when the scope is a polygon: queries can start there.
    pub fn bounds(&self) -> Option<Rect<f64>> {
        match self {
            Scope::Polygon { bounds, .. } => Some(*bounds),
            _ => None,
        }
    }

    /// Whether the scope is the whole country (no per-parcel check at all).
    pub fn is_nation(&self) -> bool {
        matches!(self, Scope::Nation)
    }
}

/// A polygon or multipolygon in WKT.
pub fn parse_polygon(raw: &str) -> Result<MultiPolygon<f64>, AccessError> {
    use wkt::TryFromWkt;
    let geometry = geo::Geometry::<f64>::try_from_wkt_str(raw)
        .map_err(|e| AccessError::Invalid(format!("area polygon: not WKT ({e})")))?;
    match geometry {
        geo::Geometry::Polygon(p) => Ok(MultiPolygon(vec![p])),
        geo::Geometry::MultiPolygon(m) => Ok(m),
        _ => Err(AccessError::Invalid("area polygon: give a POLYGON or MULTIPOLYGON".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> ReferenceData {
        ReferenceData::embedded().expect("embedded reference data")
    }

    #[test]
    fn a_province_scope_holds_its_communes_and_the_codes_merged_into_them() {
        let r = reference();
        let province = r.provinces().next().expect("a province").code.clone();
        let scope =
            Scope::compile(&Area::Provinces { codes: vec![province.as_str().to_owned()] }, &r).expect("compiles");
        let Scope::Communes(set) = &scope else { panic!("a commune set") };
        let own: Vec<&CommuneCode> = r.communes().filter(|c| c.province_code == province).map(|c| &c.code).collect();
        assert!(!own.is_empty());
        for c in &own {
            assert!(set.contains(*c));
            for old in r.old_codes_merged_into(c) {
                assert!(set.contains(&old));
            }
        }
        let other = r.communes().find(|c| c.province_code != province).expect("another province's commune");
        assert!(!scope.sees(&other.code, || unreachable!()));
    }

    #[test]
    fn unknown_codes_and_bad_polygons_are_refused_with_the_value() {
        let r = reference();
        let e = Scope::compile(&Area::Communes { codes: vec!["99999".into()] }, &r).expect_err("unknown");
        assert!(e.to_string().contains("99999"));
        assert!(Scope::compile(&Area::Provinces { codes: vec!["xx".into()] }, &r).is_err());
        assert!(Scope::compile(&Area::Polygon { wkt: "POINT(1 2)".into() }, &r).is_err());
    }

    /// A pre-2025 code (Đà Nẵng's parcels still carry 20203) is refused with the 2025 commune
    /// to give instead, and that one is taken.
    #[test]
    fn an_old_commune_code_is_refused_naming_the_commune_it_went_into() {
        let r = reference();
        let e = Scope::compile(&Area::Communes { codes: vec!["20203".into()] }, &r).expect_err("an old code");
        let e = e.to_string();
        let named = e.split("give ").nth(1).and_then(|rest| rest.get(..5)).expect("a code to give");
        assert!(e.contains("20203") && e.contains("merged into"), "{e}");
        let scope = Scope::compile(&Area::Communes { codes: vec![named.into()] }, &r).expect("the named commune");
        let Scope::Communes(set) = scope else { panic!("a commune set") };
        assert!(set.contains(&CommuneCode::parse("20203").expect("code")), "its area holds the old code");
    }

    #[test]
    fn a_polygon_scope_sees_parcels_meeting_it_only() {
        let r = reference();
        let scope =
            Scope::compile(&Area::Polygon { wkt: "POLYGON((108 16,108.1 16,108.1 16.1,108 16.1,108 16))".into() }, &r)
                .expect("compiles");
        let c = CommuneCode::parse("20194").expect("code");
        let square = |x: f64, y: f64| MultiPolygon(vec![Rect::new((x, y), (x + 0.001, y + 0.001)).to_polygon()]);
        assert!(scope.sees(&c, || square(108.05, 16.05)));
        assert!(!scope.sees(&c, || square(108.2, 16.05)));
    }

    #[test]
    fn policies_read_back_from_their_json() {
        let p = Policy {
            area: Area::Communes { codes: vec!["20194".into()] },
            personal_data: true,
            operations: Role::Surveyor.default_operations(),
            limits: Limits { requests_per_second: Some(5.0), features_per_response: Some(100), features_per_day: None },
            valid_from: None,
            valid_until: Some(Utc::now()),
            purpose: "Luật Đất đai 2024, điều 59".into(),
        };
        let json = serde_json::to_string(&p).expect("serialises");
        assert_eq!(serde_json::from_str::<Policy>(&json).expect("reads back"), p);
        assert!(!p.in_force(Utc::now() + chrono::Duration::seconds(1)));
    }
}
