//! Query parameters, read strictly: a parameter the endpoint does not know, a repeated one, or a
//! value it cannot take is a 400 that says which and why. A filter silently ignored would return
//! everything, which for a land database is the worst answer.

use std::collections::BTreeMap;

use geo::Rect;

use landdb_model::ReferenceData;

use crate::crs::OutputCrs;
use crate::ogc::{ApiError, CRS84};

/// The parameters of one request.
#[derive(Debug)]
pub struct Params {
    values: BTreeMap<String, String>,
}

/// The most features one page holds; a larger `limit` is lowered to it (OGC API – Features
/// requires that, rather than an error).
pub const MAX_LIMIT: usize = 10_000;
pub const DEFAULT_LIMIT: usize = 100;

impl Params {
    /// Parses `query` and refuses any parameter not in `allowed`, and any `f` but JSON.
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        Self::parse_formats(query, allowed, &["json", "geojson"])
    }

    /// As [`Params::parse`], with the formats (`f`) the endpoint answers in.
    pub fn parse_formats(query: Option<&str>, allowed: &[&str], formats: &[&str]) -> Result<Self, ApiError> {
        let mut values = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if !allowed.contains(&name.as_ref()) {
                let accepted = if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") };
                return Err(ApiError::bad_parameter(format!(
                    "unknown parameter `{name}`: this endpoint accepts {accepted}"
                )));
            }
            if values.insert(name.to_string(), value.to_string()).is_some() {
                return Err(ApiError::bad_parameter(format!("parameter `{name}` is given more than once")));
            }
        }
        let params = Params { values };
        match params.get("f") {
            Some(f) if !formats.contains(&f) => {
                Err(ApiError::bad_parameter(format!("f={f}: this endpoint answers f={}", formats.join(", f="))))
            }
            _ => Ok(params),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// `limit`, lowered to [`MAX_LIMIT`].
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(raw) => match raw.parse::<usize>() {
                Ok(0) | Err(_) => {
                    Err(ApiError::bad_parameter(format!("limit={raw}: give a whole number from 1 to {MAX_LIMIT}")))
                }
                Ok(n) => Ok(n.min(MAX_LIMIT)),
            },
        }
    }

    /// `bbox`, in longitude and latitude: given in CRS84 (the default) or in the CRS `bbox-crs`
    /// names (EPSG:4326 and VN-2000 geographic latitude first, as EPSG orders them; a VN-2000 TM-3
    /// zone or UTM in metres, easting first).
    pub fn bbox(&self, reference: &ReferenceData) -> Result<Option<Rect<f64>>, ApiError> {
        let crs = match self.get("bbox-crs") {
            None => None,
            Some(raw) => Some(OutputCrs::parse(raw, reference).map_err(|_| {
                ApiError::bad_parameter(format!(
                    "bbox-crs={raw}: not a coordinate system this server knows; the collection's `crs` list names them"
                ))
            })?),
        };
        let Some(raw) = self.get("bbox") else {
            return match crs {
                Some(_) => Err(ApiError::bad_parameter("bbox-crs is given without bbox")),
                None => Ok(None),
            };
        };
        match crs {
            None => parse_bbox(raw).map(Some),
            Some(c) if c.uri == CRS84 => parse_bbox(raw).map(Some),
            Some(c) => {
                let [a, b, cc, d] = four_numbers(raw)?;
                if a > cc || b > d {
                    return Err(ApiError::bad_parameter(format!(
                        "bbox={raw}: give the lower corner first, then the upper one, in the axis order of {}",
                        c.uri
                    )));
                }
                let rect = c.box_to_wgs84([a, b, cc, d])?;
                let (min, max) = (rect.min(), rect.max());
                parse_bbox(&format!("{},{},{},{}", min.x, min.y, max.x, max.y))
                    .map_err(|e| ApiError::bad_parameter(format!("bbox={raw} in {}: {}", c.uri, e.description)))
                    .map(Some)
            }
        }
    }

    /// A required number.
    pub fn number(&self, name: &str) -> Result<f64, ApiError> {
        let raw = self.get(name).ok_or_else(|| ApiError::bad_parameter(format!("parameter `{name}` is required")))?;
        raw.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| ApiError::bad_parameter(format!("{name}={raw}: give a number")))
    }
}

/// Four numbers, comma-separated.
fn four_numbers(raw: &str) -> Result<[f64; 4], ApiError> {
    let numbers: Result<Vec<f64>, _> = raw.split(',').map(|n| n.trim().parse::<f64>()).collect();
    let bad = |why: &str| ApiError::bad_parameter(format!("bbox={raw}: {why}"));
    let n = numbers.map_err(|_| bad("give four numbers: west,south,east,north"))?;
    match n[..] {
        [w, s, e, n] => Ok([w, s, e, n]),
        _ => Err(bad(if n.len() == 6 {
            "three-dimensional boxes are not supported; give west,south,east,north"
        } else {
            "give four numbers: west,south,east,north"
        })),
    }
}

/// A bounding box in longitude and latitude: `west,south,east,north`.
pub fn parse_bbox(raw: &str) -> Result<Rect<f64>, ApiError> {
    let [w, s, e, n] = four_numbers(raw)?;
    let bad = |why: &str| ApiError::bad_parameter(format!("bbox={raw}: {why}"));
    if [w, s, e, n].iter().any(|v| !v.is_finite()) {
        return Err(bad("every number must be finite"));
    }
    if !(-180.0..=180.0).contains(&w) || !(-180.0..=180.0).contains(&e) {
        return Err(bad("longitudes lie between -180 and 180"));
    }
    if !(-90.0..=90.0).contains(&s) || !(-90.0..=90.0).contains(&n) {
        return Err(bad("latitudes lie between -90 and 90"));
    }
    if s > n {
        return Err(bad("south is above north"));
    }
    if w > e {
        return Err(bad("west is east of east (boxes across the antimeridian are not supported)"));
    }
    Ok(Rect::new((w, s), (e, n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_repeated_and_malformed_parameters_are_refused_by_name() {
        let reference = ReferenceData::embedded().expect("reference data");
        let e = Params::parse(Some("bbox=1,2,3,4&colour=red"), &["bbox"]).expect_err("unknown");
        assert!(e.description.contains("`colour`") && e.description.contains("bbox"), "{e}");
        let e = Params::parse(Some("limit=1&limit=2"), &["limit"]).expect_err("twice");
        assert!(e.description.contains("more than once"), "{e}");
        for (bbox, why) in [
            ("1,2,3", "four numbers"),
            ("1,2,3,x", "four numbers"),
            ("1,2,3,4,5,6", "three-dimensional"),
            ("1,5,3,4", "south is above north"),
            ("3,2,1,4", "west is east"),
            ("1,2,200,4", "longitudes"),
            ("1,-91,3,4", "latitudes"),
            ("1,2,inf,4", "finite"),
        ] {
            let p = Params::parse(Some(&format!("bbox={bbox}")), &["bbox"]).expect("parsed");
            let e = p.bbox(&reference).expect_err(bbox);
            assert!(e.description.contains(why), "{bbox}: {e}");
        }
        let p = Params::parse(Some("bbox=108.1,16.0,108.2,16.1"), &["bbox"]).expect("parsed");
        assert_eq!(p.bbox(&reference).expect("box"), Some(Rect::new((108.1, 16.0), (108.2, 16.1))));
        // EPSG:4326 is latitude first.
        let p = Params::parse(Some("bbox=16.0,108.1,16.1,108.2&bbox-crs=EPSG:4326"), &["bbox", "bbox-crs"])
            .expect("parsed");
        assert_eq!(p.bbox(&reference).expect("box"), Some(Rect::new((108.1, 16.0), (108.2, 16.1))));
        for (query, why) in [
            ("bbox-crs=EPSG:4326", "without bbox"),
            ("bbox=1,2,3,4&bbox-crs=EPSG:3857", "bbox-crs=EPSG:3857"),
            ("bbox=16.1,108.1,16.0,108.2&bbox-crs=EPSG:4326", "lower corner first"),
        ] {
            let p = Params::parse(Some(query), &["bbox", "bbox-crs"]).expect("parsed");
            let e = p.bbox(&reference).expect_err(query);
            assert!(e.description.contains(why), "{query}: {e}");
        }
        for limit in ["0", "-1", "ten", "1.5"] {
            let p = Params::parse(Some(&format!("limit={limit}")), &["limit"]).expect("parsed");
            assert!(p.limit().is_err(), "{limit}");
        }
        let p = Params::parse(Some("limit=99999"), &["limit"]).expect("parsed");
        assert_eq!(p.limit().expect("limit"), MAX_LIMIT);
        assert!(Params::parse(Some("f=html"), &["f"]).is_err());
    }
}
