//! Which coordinate system a layer is in. VN-2000 TM-3 zones are recognised from the projection
//! parameters (central meridian, scale 0.9999, false easting 500 000), because ArcGIS- and
//! MapInfo-style `.prj` files name no EPSG code and carry no datum shift; read as written they
//! would land parcels a hundred metres off. The zone is then taken from the reference data, with
//! the correct EPSG:6960 shift.

use landdb_model::zone::VN2000_TOWGS84;
use landdb_model::{ReferenceData, Vn2000Zone};

use crate::source::DeclaredCrs;

/// How coordinates reach WGS84.
#[derive(Debug, Clone, PartialEq)]
pub enum CrsChoice {
    Wgs84,
    /// A VN-2000 TM-3 zone.
    Zone(Vn2000Zone),
    /// Any other CRS PROJ understands (UTM, VN-2000 geographic…), as a definition.
    Other(String),
}

impl CrsChoice {
    /// The name recorded as the parcels' source CRS.
    pub fn name(&self) -> String {
        match self {
            Self::Wgs84 => "EPSG:4326".into(),
            Self::Zone(z) => z.crs_name(),
            Self::Other(def) => def.clone(),
        }
    }

    /// The PROJ definition to transform from (None for WGS84 itself).
    pub fn definition(&self) -> Option<String> {
        match self {
            Self::Wgs84 => None,
            Self::Zone(z) => Some(z.proj_string()),
            Self::Other(def) => Some(def.clone()),
        }
    }

    /// Parses `--crs`: `EPSG:5899`, `wgs84`, or `tm3:107.75` (a central meridian).
    pub fn parse_override(raw: &str, reference: &ReferenceData) -> Result<Self, String> {
        let lower = raw.trim().to_ascii_lowercase();
        if matches!(lower.as_str(), "wgs84" | "epsg:4326" | "crs84") {
            return Ok(Self::Wgs84);
        }
        if let Some(cm) = lower.strip_prefix("tm3:") {
            let cm: f64 = cm.parse().map_err(|_| format!("{raw}: not a central meridian"))?;
            return reference
                .zone_by_central_meridian(cm)
                .map(Self::Zone)
                .ok_or_else(|| format!("{raw}: no VN-2000 zone has that meridian"));
        }
        if let Some(code) = lower.strip_prefix("epsg:").and_then(|c| c.parse::<u32>().ok()) {
            if let Some(zone) = reference.zones().into_iter().find(|z| z.epsg == code) {
                return Ok(Self::Zone(zone));
            }
            return Ok(Self::Other(format!("EPSG:{code}")));
        }
        Err(format!("{raw}: use EPSG:n, wgs84 or tm3:<central meridian>"))
    }
}

fn proj_param(proj4: &str, key: &str) -> Option<String> {
    proj4.split_whitespace().find_map(|t| t.strip_prefix('+')?.strip_prefix(key)?.strip_prefix('=').map(str::to_owned))
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-6)
}

/// What the layer's declared SRS means; `None` when it declares nothing usable.
pub fn from_declared(crs: &DeclaredCrs, reference: &ReferenceData) -> Option<CrsChoice> {
    if let Some(code) = crs.epsg.and_then(|c| u32::try_from(c).ok()) {
        if code == 4326 {
            return Some(CrsChoice::Wgs84);
        }
        if let Some(zone) = reference.zones().into_iter().find(|z| z.epsg == code) {
            return Some(CrsChoice::Zone(zone));
        }
    }
    let proj4 = crs.proj4.as_deref()?;
    let num = |k: &str| proj_param(proj4, k).and_then(|v| v.parse::<f64>().ok());
    let wkt = crs.wkt.as_deref().unwrap_or_default().to_ascii_lowercase();
    let vn2000_named = wkt.contains("2000") || wkt.contains("vietnam");
    match proj_param(proj4, "proj").as_deref() {
        Some("tmerc") if close(num("k"), 0.9999) && close(num("x_0"), 500_000.0) => {
            let cm = num("lon_0")?;
            Some(reference.zone_by_central_meridian(cm).map_or_else(
                || CrsChoice::Other(format!("+proj=tmerc +lat_0=0 +lon_0={cm} +k=0.9999 +x_0=500000 +y_0=0 +ellps=WGS84 +towgs84={VN2000_TOWGS84} +units=m +no_defs")),
                CrsChoice::Zone,
            ))
        }
        Some("longlat") if vn2000_named => {
            Some(CrsChoice::Other(format!("+proj=longlat +ellps=WGS84 +towgs84={VN2000_TOWGS84} +no_defs")))
        }
        Some("longlat") => Some(CrsChoice::Wgs84),
        Some("tmerc" | "utm") if vn2000_named => {
            // VN-2000 UTM (k 0.9996): PROJ's reading of the .prj, with the right datum shift.
            let without_shift: String = proj4
                .split_whitespace()
                .filter(|t| !t.starts_with("+towgs84") && !t.starts_with("+datum"))
                .collect::<Vec<_>>()
                .join(" ");
            Some(CrsChoice::Other(format!("{without_shift} +ellps=WGS84 +towgs84={VN2000_TOWGS84}")))
        }
        _ => Some(CrsChoice::Other(proj4.to_owned())),
    }
}

/// Whether coordinates can be longitude/latitude at all (a GeoJSON file without a `crs` member
/// but with TM-3 metres claims WGS84 falsely).
pub fn looks_geographic(x: f64, y: f64) -> bool {
    (-180.0..=180.0).contains(&x) && (-90.0..=90.0).contains(&y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> ReferenceData {
        ReferenceData::embedded().expect("reference")
    }

    #[test]
    fn an_arcgis_prj_without_epsg_is_recognised_by_its_parameters() {
        let crs = DeclaredCrs {
            proj4: Some(
                "+proj=tmerc +lat_0=0 +lon_0=107.75 +k=0.9999 +x_0=500000 +y_0=0 +ellps=WGS84 +units=m +no_defs".into(),
            ),
            wkt: Some("PROJCS[\"VN_2000_TM3_107_45\",GEOGCS[\"GCS_VN_2000\"]]".into()),
            epsg: None,
        };
        let choice = from_declared(&crs, &reference()).expect("a CRS");
        assert!(matches!(&choice, CrsChoice::Zone(z) if z.epsg == 5899), "{choice:?}");
        assert!(choice.definition().is_some_and(|d| d.contains("0.00928836")), "the correct shift is added");
    }

    #[test]
    fn overrides_and_codes() {
        let r = reference();
        assert_eq!(CrsChoice::parse_override("EPSG:9210", &r).map(|c| c.name()), Ok("EPSG:9210".into()));
        assert_eq!(CrsChoice::parse_override("tm3:105.5", &r).map(|c| c.name()), Ok("EPSG:9209".into()));
        assert_eq!(CrsChoice::parse_override("wgs84", &r), Ok(CrsChoice::Wgs84));
        assert!(CrsChoice::parse_override("tm3:99", &r).is_err());
        let wgs =
            DeclaredCrs { proj4: Some("+proj=longlat +datum=WGS84 +no_defs".into()), wkt: None, epsg: Some(4326) };
        assert_eq!(from_declared(&wgs, &r), Some(CrsChoice::Wgs84));
        assert_eq!(from_declared(&DeclaredCrs::default(), &r), None);
    }
}
