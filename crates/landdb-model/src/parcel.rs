//! A cadastral parcel (thửa đất) in canonical form, and a stored version of it.

use std::fmt;

use chrono::{DateTime, Utc};
use geo::MultiPolygon;
use serde::{Deserialize, Serialize};

use crate::{CommuneCode, LandUseCode, NationalParcelId, ProvinceCode};

/// The natural key of a parcel: commune, map sheet (số hiệu tờ bản đồ) and parcel number on that
/// sheet (số thứ tự thửa). Real data has duplicates of it; the store refuses a second current parcel
/// with the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ParcelKey {
    pub commune: CommuneCode,
    pub sheet: String,
    pub number: String,
}

impl ParcelKey {
    pub fn new(commune: CommuneCode, sheet: impl Into<String>, number: impl Into<String>) -> Self {
        Self { commune, sheet: sheet.into(), number: number.into() }
    }
}

impl fmt::Display for ParcelKey {
    /// `20203/12/345`: commune / sheet / parcel, the way land offices cite a parcel.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.commune, self.sheet, self.number)
    }
}

/// A person or organisation holding rights on a parcel. Personal data (Law 91/2025/QH15): stored in
/// its own table so that access rules can withhold it wholesale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RightHolder {
    pub name: String,
    pub citizen_id: Option<String>,
    pub birth_year: Option<i16>,
    pub address: Option<String>,
}

/// The content of one parcel version, as an import produces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parcel {
    pub national_id: NationalParcelId,
    pub key: ParcelKey,
    /// The commune code exactly as the source file had it (before mapping to the 2025 units).
    pub commune_code_received: String,
    pub province: ProvinceCode,
    pub land_use: Vec<LandUseCode>,
    /// Area on the land-use right certificate (DienTichPhapLy), m².
    pub legal_area_m2: Option<f64>,
    /// Area as surveyed and recorded by the land office (DienTich), m².
    pub measured_area_m2: Option<f64>,
    /// Area computed from `geometry`, m².
    pub geometry_area_m2: f64,
    pub address: Option<String>,
    pub certificate_no: Option<String>,
    /// Boundary in EPSG:4326 (longitude, latitude).
    pub geometry: MultiPolygon<f64>,
    /// The CRS the source delivered, e.g. `EPSG:5899`, so exports can go back to it.
    pub source_crs: Option<String>,
    /// Source attributes that map to no canonical field: kept, never dropped.
    pub extra: serde_json::Map<String, serde_json::Value>,
    pub right_holders: Vec<RightHolder>,
}

macro_rules! id_type {
    ($(#[$doc:meta] $name:ident),*) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}
id_type!(
    /// Identifies one stored parcel version.
    VersionId,
    /// Identifies one import batch (one upload).
    BatchId,
    /// A position in the store's change feed; every change has a larger one than all before it.
    FeedPosition
);

/// One stored version of a parcel, with its validity period and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParcelVersion {
    pub id: VersionId,
    pub parcel: Parcel,
    pub valid_from: DateTime<Utc>,
    /// `None` while the version is current.
    pub valid_to: Option<DateTime<Utc>>,
    pub batch: BatchId,
    /// The versions this one came from (one for an update, several for a merge).
    pub lineage: Vec<VersionId>,
}

impl ParcelVersion {
    pub fn is_current(&self) -> bool {
        self.valid_to.is_none()
    }
}
