//! One source record → one canonical parcel, or the reasons it cannot be one. Pure apart from
//! PROJ: every decision about codes, keys, areas and geometry is here.

use std::cell::RefCell;
use std::collections::HashMap;

use chrono::Datelike;
use geo::{BoundingRect, Coord, MultiPolygon, Point};
use landdb_crs::Transformer;
use landdb_model::area::geodesic_area_m2;
use landdb_model::national_id::interior_point;
use landdb_model::reference::CommuneResolution;
use landdb_model::{
    CitizenId, CommuneCode, LandUseCode, NationalParcelId, Parcel, ParcelKey, ReferenceData, RightHolder,
};
use serde_json::Value;

use crate::crs::CrsChoice;
use crate::fields::RecordFields;
use crate::geometry::{CheckedPolygons, check_and_repair};
use crate::profiles::{Canonical, FieldMapping};
use crate::source::{SourceGeometry, SourceRecord};
use crate::verdict::{Reason, ReasonCode, Verdict, verdict_of};

/// Declared and geometric areas may differ by this share before a warning (surveyors round,
/// and the TM-3 plane differs from the ellipsoid by up to 0.03 %).
pub const AREA_TOLERANCE: f64 = 0.05;

/// Vietnam's extent with its islands, lon/lat.
const VIETNAM: (f64, f64, f64, f64) = (102.0, 6.0, 118.0, 23.5);

/// The normalised record.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub feature: usize,
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
    /// The natural key, when the record had one.
    pub key: Option<ParcelKey>,
    /// The parcel, unless rejected.
    pub parcel: Option<Parcel>,
    /// A parcel rejected after normalisation (a duplicate key), kept for the quarantine.
    pub withheld: Option<Parcel>,
}

impl Outcome {
    /// Rejects an outcome after the fact (a duplicate key found across the upload or in the store).
    pub fn reject(&mut self, reason: Reason) {
        self.reasons.push(reason);
        self.verdict = Verdict::Rejected;
        self.withheld = self.parcel.take();
    }
}

/// Everything the normaliser needs about one layer.
#[derive(Debug)]
pub struct Normalizer<'a> {
    pub reference: &'a ReferenceData,
    pub mapping: &'a FieldMapping,
    pub crs: CrsChoice,
    /// Set when the CRS was not declared but inferred (each record gets the warning).
    pub crs_note: Option<Reason>,
    /// Whether a clockwise exterior is a defect (GeoJSON: RFC 7946) or the format's convention
    /// (Shapefile, Esri JSON), silently turned round.
    pub orientation_matters: bool,
}

thread_local! {
    /// PROJ objects are not thread-safe: one per definition per thread.
    static TRANSFORMERS: RefCell<HashMap<String, Transformer>> = RefCell::new(HashMap::new());
}

fn with_transformer<T>(definition: &str, f: impl FnOnce(&Transformer) -> T) -> Result<T, String> {
    TRANSFORMERS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(definition) {
            let t = Transformer::between(definition, landdb_crs::WGS84).map_err(|e| e.to_string())?;
            cache.insert(definition.to_owned(), t);
        }
        cache.get(definition).map(f).ok_or_else(|| "transformer missing".to_owned())
    })
}

/// Sheet and parcel numbers without leading zeros or a spurious decimal.
fn canonical_number(raw: &str) -> String {
    let t = raw.trim();
    let t = t.strip_suffix(".0").unwrap_or(t);
    if t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() {
        let trimmed = t.trim_start_matches('0');
        if trimmed.is_empty() { "0".into() } else { trimmed.to_owned() }
    } else {
        t.to_owned()
    }
}

impl Normalizer<'_> {
    /// A holder's citizen ID as the file gave it, checked: one a numeric column cut its leading
    /// zero from (11 digits) gets it back; one that is still no citizen ID is kept as given,
    /// with a warning that never quotes it (reasons are read by people without the right to see
    /// it), and no lookup by citizen will find it.
    fn citizen_id(&self, raw: String, field: &str, reasons: &mut Vec<Reason>) -> String {
        let raw = if raw.len() == 11 && raw.bytes().all(|b| b.is_ascii_digit()) { format!("0{raw}") } else { raw };
        let this_year = chrono::Utc::now().year();
        match CitizenId::parse(&raw, self.reference, this_year) {
            Ok(id) => id.into(),
            Err(e) => {
                reasons.push(Reason::on(ReasonCode::InvalidCitizenId, field, e.to_string()));
                raw
            }
        }
    }

    pub fn normalize(&self, record: &SourceRecord) -> Outcome {
        let mut reasons: Vec<Reason> = self.crs_note.iter().cloned().collect();
        let fields = RecordFields::read(record, self.mapping, &mut reasons);
        let mut extra = fields.extra.clone();
        let text = |c: Canonical| fields.text(c);
        let field = |c: Canonical, fallback: &str| fields.name(c, fallback);

        // The natural key.
        let mut commune_2025: Option<String> = None;
        let key = (|| {
            let commune_raw = text(Canonical::CommuneCode);
            let sheet = text(Canonical::Sheet);
            let number = text(Canonical::Number);
            let (Some(commune_raw), Some(sheet), Some(number)) = (commune_raw, sheet, number) else {
                let missing: Vec<&str> = [
                    (Canonical::CommuneCode, "commune code"),
                    (Canonical::Sheet, "map sheet"),
                    (Canonical::Number, "parcel number"),
                ]
                .into_iter()
                .filter(|(c, _)| text(*c).is_none() && !fields.refused(*c))
                .map(|(_, n)| n)
                .collect();
                // A refused value has its reason already; only what is absent is missing.
                if !missing.is_empty() {
                    reasons.push(Reason::new(ReasonCode::MissingKey, format!("no {}", missing.join(", "))));
                }
                return None;
            };
            let commune_field = field(Canonical::CommuneCode, "MaXa");
            let Ok(received) = CommuneCode::parse(&commune_raw) else {
                reasons.push(Reason::on(
                    ReasonCode::InvalidCommuneCode,
                    &commune_field,
                    format!("{commune_raw:?} is not a commune code"),
                ));
                return None;
            };
            // Sheets and parcels are numbered per commune as it was surveyed, so the key keeps the
            // code as received; the 2025 commune it now belongs to is recorded beside it.
            match self.reference.resolve_commune(&received) {
                CommuneResolution::Current(_) => {}
                CommuneResolution::MergedInto(new) => {
                    reasons.push(Reason::on(
                        ReasonCode::ObsoleteCommuneCode,
                        &commune_field,
                        format!("{received} was merged into {new}"),
                    ));
                    commune_2025 = Some(new.to_string());
                }
                CommuneResolution::SplitAmong(options) => {
                    let list: Vec<String> = options.iter().map(ToString::to_string).collect();
                    reasons.push(Reason::on(
                        ReasonCode::ObsoleteCommuneCode,
                        &commune_field,
                        format!("{received} was split among {}", list.join(", ")),
                    ));
                }
                CommuneResolution::Unknown if self.reference.province_of(&received).is_some() => {
                    reasons.push(Reason::on(
                        ReasonCode::ObsoleteCommuneCode,
                        &commune_field,
                        format!("{received} is in no list of communes"),
                    ));
                }
                CommuneResolution::Unknown => {
                    reasons.push(Reason::on(
                        ReasonCode::UnknownCommune,
                        &commune_field,
                        format!("{received} is in no province"),
                    ));
                    return None;
                }
            }
            let commune = received;
            Some((ParcelKey::new(commune, canonical_number(&sheet), canonical_number(&number)), commune_raw))
        })();

        // Land use: split, mapped to the 2024 list where a legacy code has a successor.
        let mut land_use = Vec::new();
        if let Some(raw) = text(Canonical::LandUse) {
            let lu_field = field(Canonical::LandUse, "KyHieuMucDichSuDung");
            match LandUseCode::parse_list(&raw) {
                Ok(codes) => {
                    for code in codes {
                        match self.reference.current_land_use(&code) {
                            Some(current) => land_use.push(current),
                            None => {
                                reasons.push(Reason::on(
                                    ReasonCode::UnknownLandUse,
                                    &lu_field,
                                    format!("{code} is on no list"),
                                ));
                                land_use.push(code);
                            }
                        }
                    }
                }
                Err(e) => reasons.push(Reason::on(ReasonCode::UnknownLandUse, &lu_field, e.to_string())),
            }
            let current: Vec<&str> = land_use.iter().map(LandUseCode::as_str).collect();
            if current.join("+") != raw.trim() {
                extra.insert("land_use_received".into(), Value::String(raw));
            }
        }

        let measured = fields.number(Canonical::MeasuredArea);
        let legal = fields.number(Canonical::LegalArea);
        let birth_year = fields.number(Canonical::OwnerBirthYear);

        let geometry = self.geometry(record, key.as_ref().map(|(k, _)| &k.commune), &mut reasons);
        let national_id = geometry.as_ref().and_then(|(_, id)| id.clone());
        let geometry = geometry.map(|(g, _)| g);
        let geometry_area = geometry.as_ref().map(geodesic_area_m2);
        if let (Some(declared), Some(computed)) = (measured, geometry_area) {
            let area_field = field(Canonical::MeasuredArea, "DienTich");
            if declared <= 0.0 {
                reasons.push(Reason::on(
                    ReasonCode::ZeroArea,
                    &area_field,
                    format!("declared {declared} m², geometry {computed:.1} m²"),
                ));
            } else if (declared - computed).abs() > (AREA_TOLERANCE * computed).max(1.0) {
                reasons.push(Reason::on(
                    ReasonCode::AreaMismatch,
                    &area_field,
                    format!("declared {declared} m², geometry {computed:.1} m²"),
                ));
            }
        }

        let mut holders = Vec::new();
        if let Some(name) = text(Canonical::Owner) {
            let birth_year = birth_year.filter(|y| (1850.0..=2030.0).contains(y)).map(|y| y as i16);
            let citizen_id = text(Canonical::OwnerCitizenId)
                .map(|raw| self.citizen_id(raw, &field(Canonical::OwnerCitizenId, "SoDinhDanhC1"), &mut reasons));
            holders.push(RightHolder { name, citizen_id, birth_year, address: text(Canonical::OwnerAddress) });
        }
        if let Some(name) = text(Canonical::SecondOwner) {
            holders.push(RightHolder { name, citizen_id: None, birth_year: None, address: None });
        }

        if let Some(code) = commune_2025 {
            extra.insert("commune_2025".into(), Value::String(code));
        }
        let verdict = verdict_of(&reasons);
        let parcel = match (&key, geometry, national_id, verdict) {
            (Some((key, received)), Some(geometry), Some(national_id), v) if v != Verdict::Rejected => {
                let province = self.reference.province_of(&key.commune);
                province.map(|province| Parcel {
                    national_id,
                    key: key.clone(),
                    commune_code_received: received.clone(),
                    province,
                    land_use,
                    legal_area_m2: legal,
                    measured_area_m2: measured,
                    geometry_area_m2: geometry_area.unwrap_or_default(),
                    address: text(Canonical::Address),
                    certificate_no: text(Canonical::CertificateNo),
                    geometry,
                    source_crs: Some(self.crs.name()),
                    extra,
                    right_holders: holders,
                })
            }
            _ => None,
        };
        let verdict = if parcel.is_none() && verdict != Verdict::Rejected { Verdict::Rejected } else { verdict };
        Outcome { feature: record.feature, verdict, reasons, key: key.map(|(k, _)| k), parcel, withheld: None }
    }

    /// Checked, repaired, reprojected geometry and the national ID; `None` with a reason if unusable.
    fn geometry(
        &self,
        record: &SourceRecord,
        commune: Option<&CommuneCode>,
        reasons: &mut Vec<Reason>,
    ) -> Option<(MultiPolygon<f64>, Option<NationalParcelId>)> {
        let polygons = match &record.geometry {
            SourceGeometry::Null => {
                reasons.push(Reason::new(ReasonCode::NullGeometry, "no geometry"));
                return None;
            }
            SourceGeometry::NotPolygon(kind) => {
                reasons.push(Reason::new(ReasonCode::NotPolygon, format!("a {kind}, not a polygon")));
                return None;
            }
            SourceGeometry::Point(_) => {
                reasons.push(Reason::new(ReasonCode::NotPolygon, "a point, not a polygon"));
                return None;
            }
            SourceGeometry::Polygons(p) => p,
        };
        let polygons = match CheckedPolygons::new(polygons) {
            Ok(checked) => checked,
            Err(reason) => {
                reasons.push(reason);
                return None;
            }
        };
        let (geometry, found) = check_and_repair(polygons);
        reasons.extend(found.into_iter().filter(|r| self.orientation_matters || r.code != ReasonCode::RingOrientation));
        let geometry = geometry?;
        let reprojection_failed = |reasons: &mut Vec<Reason>, e: String| {
            reasons.push(Reason::new(ReasonCode::InvalidGeometry, format!("cannot reproject: {e}")));
        };
        let definition = self.crs.definition();
        let mut wgs84 = match &definition {
            None => geometry.clone(),
            Some(definition) => {
                match with_transformer(definition, |t| t.multi_polygon(&geometry).map_err(|e| e.to_string()))
                    .and_then(|r| r)
                {
                    Ok(g) => g,
                    Err(e) => {
                        reprojection_failed(reasons, e);
                        return None;
                    }
                }
            }
        };
        // On the storage grid (about a millimetre), so the engine holds exactly what PostGIS does.
        landdb_model::grid::snap_geometry(&mut wgs84);
        let bbox = wgs84.bounding_rect()?;
        let (w, s, e, n) = VIETNAM;
        if bbox.min().x < w || bbox.max().x > e || bbox.min().y < s || bbox.max().y > n {
            let zone = commune.and_then(|c| self.reference.zone_of_commune(c));
            reasons.push(Reason::new(
                ReasonCode::OutsideVietnam,
                format!(
                    "lies at {:.4}, {:.4} after reading it as {}{}",
                    bbox.min().x,
                    bbox.min().y,
                    self.crs.name(),
                    zone.map_or(String::new(), |z| format!(" (its commune is in {})", z.crs_name()))
                ),
            ));
            return None;
        }
        // Only for a parcel in the country: the interior point is searched in the source plane
        // (VN-2000 metres for TM-3 sources), then reprojected.
        let interior = interior_point(&geometry);
        let point = match (&definition, interior) {
            (Some(definition), Some(p)) => {
                match with_transformer(definition, |t| {
                    t.coord(Coord::from(p)).map(Point::from).map_err(|e| e.to_string())
                })
                .and_then(|r| r)
                {
                    Ok(p) => Some(p),
                    Err(e) => {
                        reprojection_failed(reasons, e);
                        return None;
                    }
                }
            }
            (_, interior) => interior,
        };
        let id = point.and_then(|p| NationalParcelId::from_wgs84(p).ok());
        Some((wgs84, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{MAX_COORDINATE, MAX_VERTICES};
    use crate::source::AttrValue;

    fn record(ring: Vec<Coord<f64>>) -> SourceRecord {
        let text = |s: &str| AttrValue::Text(s.to_owned());
        SourceRecord {
            feature: 1,
            attributes: vec![
                ("MaXa".into(), text("20194")),
                ("SoHieuToBanDo".into(), text("1")),
                ("SoThuTuThua".into(), text("1")),
            ],
            geometry: SourceGeometry::Polygons(vec![vec![ring]]),
        }
    }

    /// Both kinds of layer: WGS84 and the commune's TM-3 zone (reprojected through PROJ).
    fn with_normalizers(f: impl Fn(&Normalizer<'_>)) {
        static REFERENCE: std::sync::OnceLock<ReferenceData> = std::sync::OnceLock::new();
        let reference = REFERENCE.get_or_init(|| ReferenceData::embedded().expect("reference"));
        let mapping = FieldMapping::builtin().expect("profile");
        let commune = CommuneCode::parse("20194").expect("code");
        let zone = reference.zone_of_commune(&commune).expect("zone");
        for crs in [CrsChoice::Wgs84, CrsChoice::Zone(zone)] {
            let normalizer =
                Normalizer { reference, mapping: &mapping, crs, crs_note: None, orientation_matters: true };
            f(&normalizer);
        }
    }

    fn codes(outcome: &Outcome) -> Vec<ReasonCode> {
        outcome.reasons.iter().map(|r| r.code).collect()
    }

    #[test]
    fn a_coordinate_out_of_range_is_refused_before_any_geometry_algorithm() {
        with_normalizers(|n| {
            for far in [1e308, -1e15, f64::NAN, f64::INFINITY, MAX_COORDINATE * 1.5] {
                let ring = vec![Coord { x: 0.0, y: 0.0 }, Coord { x: far, y: 1.0 }, Coord { x: 1.0, y: 1.0 }];
                let outcome = n.normalize(&record(ring));
                assert_eq!(codes(&outcome), [ReasonCode::CoordinateOutOfRange], "{far}");
                assert!(outcome.reasons[0].detail.contains("vertex 2"), "{}", outcome.reasons[0].detail);
            }
            let many: Vec<Coord<f64>> = (0..=MAX_VERTICES).map(|i| Coord { x: i as f64, y: (i % 2) as f64 }).collect();
            assert_eq!(codes(&n.normalize(&record(many))), [ReasonCode::TooManyVertices]);
        });
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any f64 coordinates at all, in either kind of layer: a verdict in bounded time, never
        /// a panic; a parcel only from coordinates in range.
        #[test]
        fn arbitrary_coordinates_get_a_verdict_in_bounded_time(
            coords in proptest::collection::vec((proptest::num::f64::ANY, proptest::num::f64::ANY), 3..10),
        ) {
            let ring: Vec<Coord<f64>> = coords.iter().map(|&(x, y)| Coord { x, y }).collect();
            let in_range = ring.iter().all(|c| c.x.abs() <= MAX_COORDINATE && c.y.abs() <= MAX_COORDINATE);
            with_normalizers(|n| {
                let started = std::time::Instant::now();
                let outcome = n.normalize(&record(ring.clone()));
                assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
                assert!(in_range || outcome.parcel.is_none());
                assert_eq!(in_range, !codes(&outcome).contains(&ReasonCode::CoordinateOutOfRange), "{ring:?}");
            });
        }
    }
}
