//! A stored parcel version as both stores read it, and its conversion to the model.

use chrono::{DateTime, Utc};
use landdb_model::{
    BatchId, CommuneCode, LandUseCode, NationalParcelId, Parcel, ParcelKey, ParcelVersion, ProvinceCode, VersionId,
};

use crate::{Result, StoreError, geometry};

/// Column values of one `parcel_version` row, decoded to plain types by the backend.
#[derive(Debug)]
pub(crate) struct VersionRow {
    pub id: i64,
    pub national_id: String,
    pub commune_code: String,
    pub sheet: String,
    pub parcel_no: String,
    pub commune_code_received: String,
    pub province_code: String,
    pub land_use: Vec<String>,
    pub legal_area_m2: Option<f64>,
    pub measured_area_m2: Option<f64>,
    pub geometry_area_m2: f64,
    pub address: Option<String>,
    pub certificate_no: Option<String>,
    pub source_crs: Option<String>,
    pub extra: serde_json::Value,
    pub geom_wkb: Vec<u8>,
    pub valid_from: DateTime<Utc>,
    pub valid_to: Option<DateTime<Utc>>,
    pub batch_id: i64,
    pub lineage: Vec<i64>,
}

fn corrupt(id: i64, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("parcel version {id}: {what}"))
}

impl VersionRow {
    pub fn into_version(self) -> Result<ParcelVersion> {
        let id = self.id;
        let extra = match self.extra {
            serde_json::Value::Object(map) => map,
            other => return Err(corrupt(id, format!("extra attributes are not an object: {other}"))),
        };
        let land_use = self
            .land_use
            .iter()
            .map(|c| LandUseCode::parse(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(id, e))?;
        Ok(ParcelVersion {
            id: VersionId(id),
            parcel: Parcel {
                national_id: NationalParcelId::parse(&self.national_id).map_err(|e| corrupt(id, e))?,
                key: ParcelKey::new(
                    CommuneCode::parse(&self.commune_code).map_err(|e| corrupt(id, e))?,
                    self.sheet,
                    self.parcel_no,
                ),
                commune_code_received: self.commune_code_received,
                province: ProvinceCode::parse(&self.province_code).map_err(|e| corrupt(id, e))?,
                land_use,
                legal_area_m2: self.legal_area_m2,
                measured_area_m2: self.measured_area_m2,
                geometry_area_m2: self.geometry_area_m2,
                address: self.address,
                certificate_no: self.certificate_no,
                geometry: geometry::from_wkb(&self.geom_wkb).map_err(|e| corrupt(id, e))?,
                source_crs: self.source_crs,
                extra,
                right_holders: Vec::new(),
            },
            valid_from: self.valid_from,
            valid_to: self.valid_to,
            batch: BatchId(self.batch_id),
            lineage: self.lineage.into_iter().map(VersionId).collect(),
        })
    }
}
