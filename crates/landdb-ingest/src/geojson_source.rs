//! GeoJSON parcels in WGS84 with VBDLIS field names (`MaXa`, `SoHieuToBanDo`, `SoThuTuThua`,
//! `DienTich`, `KyHieuMucDichSuDung`, …), as the Đà Nẵng set and landdb's own samples have them.

use std::path::Path;

use geo::{Geometry, MultiPolygon};
use landdb_model::area::geodesic_area_m2;
use landdb_model::national_id::interior_point;
use landdb_model::{CommuneCode, LandUseCode, NationalParcelId, Parcel, ParcelKey, ReferenceData, RightHolder};
use serde_json::{Map, Value};

use crate::fields::{number, text};
use crate::{RecordError, SourceError};

/// Source fields that map to canonical ones; everything else is kept as an extra attribute.
const MAPPED: [&str; 11] = [
    "MaXa",
    "SoHieuToBanDo",
    "SoThuTuThua",
    "DienTich",
    "DienTichPhapLy",
    "KyHieuMucDichSuDung",
    "DiaChi",
    "SoHieuGCN",
    "TenChu",
    "TenChu2",
    "NamSinhC1",
];

/// Reads every feature of a GeoJSON file: a parcel, or the reason it is not one.
pub fn read_parcels(path: &Path, reference: &ReferenceData) -> Result<Vec<Result<Parcel, RecordError>>, SourceError> {
    let raw = std::fs::read_to_string(path).map_err(|source| SourceError::Read { file: path.to_owned(), source })?;
    let collection: geojson::FeatureCollection = raw
        .parse()
        .map_err(|e: geojson::Error| SourceError::GeoJson { file: path.to_owned(), reason: e.to_string() })?;
    Ok(collection
        .features
        .into_iter()
        .enumerate()
        .map(|(i, feature)| to_parcel(path, i + 1, feature, reference))
        .collect())
}

fn to_parcel(
    path: &Path,
    feature: usize,
    f: geojson::Feature,
    reference: &ReferenceData,
) -> Result<Parcel, RecordError> {
    let error = |field: Option<&str>, reason: String| RecordError {
        file: path.to_owned(),
        feature,
        field: field.map(str::to_owned),
        reason,
    };
    let props: Map<String, Value> = f.properties.unwrap_or_default();
    let required = |field: &str| text(props.get(field)).ok_or_else(|| error(Some(field), "missing".into()));

    let commune_received = required("MaXa")?;
    let commune = CommuneCode::parse(&commune_received).map_err(|e| error(Some("MaXa"), e.to_string()))?;
    let province = reference
        .province_of(&commune)
        .ok_or_else(|| error(Some("MaXa"), format!("commune {commune} is in no known province")))?;
    let key = ParcelKey::new(commune, required("SoHieuToBanDo")?, required("SoThuTuThua")?);

    let geometry = match f.geometry.map(|g| Geometry::<f64>::try_from(g.value)) {
        None => return Err(error(None, "null geometry".into())),
        Some(Err(e)) => return Err(error(None, format!("unreadable geometry: {e}"))),
        Some(Ok(Geometry::Polygon(p))) => MultiPolygon(vec![p]),
        Some(Ok(Geometry::MultiPolygon(mp))) => mp,
        Some(Ok(other)) => return Err(error(None, format!("not a polygon: {}", geometry_kind(&other)))),
    };
    let point = interior_point(&geometry).ok_or_else(|| error(None, "empty geometry".into()))?;
    let national_id = NationalParcelId::from_wgs84(point).map_err(|e| error(None, e.to_string()))?;

    let mut extra: Map<String, Value> =
        props.iter().filter(|(k, _)| !MAPPED.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    let land_use_raw = text(props.get("KyHieuMucDichSuDung")).unwrap_or_default();
    let land_use = LandUseCode::parse_list(&land_use_raw).unwrap_or_else(|_| {
        // Kept as received; the import pipeline reports unknown codes.
        extra.insert("KyHieuMucDichSuDung".into(), Value::String(land_use_raw.clone()));
        Vec::new()
    });
    Ok(Parcel {
        national_id,
        key,
        commune_code_received: commune_received,
        province,
        land_use,
        legal_area_m2: number(props.get("DienTichPhapLy")).map_err(|e| error(Some("DienTichPhapLy"), e))?,
        measured_area_m2: number(props.get("DienTich")).map_err(|e| error(Some("DienTich"), e))?,
        geometry_area_m2: geodesic_area_m2(&geometry),
        address: text(props.get("DiaChi")),
        certificate_no: text(props.get("SoHieuGCN")),
        geometry,
        source_crs: Some("EPSG:4326".into()),
        extra,
        right_holders: right_holders(&props).map_err(|(field, reason)| error(Some(field), reason))?,
    })
}

/// Owners named in the record (`TenChu` with birth year `NamSinhC1`, and `TenChu2`): personal
/// data, so they go to the right-holder table, never into the extra attributes.
fn right_holders(props: &Map<String, Value>) -> Result<Vec<RightHolder>, (&'static str, String)> {
    let mut holders = Vec::new();
    if let Some(name) = text(props.get("TenChu")) {
        let birth_year = match number(props.get("NamSinhC1")).map_err(|e| ("NamSinhC1", e))? {
            Some(y) if (1850.0..=2030.0).contains(&y) => Some(y as i16),
            Some(y) => return Err(("NamSinhC1", format!("{y} is not a birth year"))),
            None => None,
        };
        holders.push(RightHolder { name, citizen_id: None, birth_year, address: None });
    }
    if let Some(name) = text(props.get("TenChu2")) {
        holders.push(RightHolder { name, citizen_id: None, birth_year: None, address: None });
    }
    Ok(holders)
}

fn geometry_kind(g: &Geometry<f64>) -> &'static str {
    match g {
        Geometry::Point(_) => "Point",
        Geometry::Line(_) | Geometry::LineString(_) => "LineString",
        Geometry::MultiPoint(_) => "MultiPoint",
        Geometry::MultiLineString(_) => "MultiLineString",
        Geometry::GeometryCollection(_) => "GeometryCollection",
        Geometry::Rect(_) | Geometry::Triangle(_) | Geometry::Polygon(_) | Geometry::MultiPolygon(_) => "Polygon",
    }
}
