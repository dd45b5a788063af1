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
            // `into_owned`, not `to_string`: the latter goes through `fmt`, on every parameter.
            match values.entry(name.into_owned()) {
                std::collections::btree_map::Entry::Occupied(e) => {
                    return Err(ApiError::bad_parameter(format!("parameter `{}` is given more than once", e.key())));
                }
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(value.into_owned());
                }
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
    pub fn bbox(&self, reference: &ReferenceData) -> Result<Option<BoxQuery>, ApiError> {
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
                let [a, b, cc, d] = box_numbers(raw)?;
                if a > cc || b > d {
                    return Err(ApiError::bad_parameter(format!(
                        "bbox={raw}: give the lower corner first, then the upper one, in the axis order of {}",
                        c.uri
                    )));
                }
                let rect = c.box_to_wgs84([a, b, cc, d])?;
                let (min, max) = (rect.min(), rect.max());
                checked_box(raw, [min.x, min.y, max.x, max.y])
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

/// A box's corners, comma-separated: `west,south,east,north`, or the six numbers of a box with
/// heights (`west,south,min height,east,north,max height`, as OGC API – Features allows), whose
/// heights are dropped: parcels are flat.
fn box_numbers(raw: &str) -> Result<[f64; 4], ApiError> {
    let numbers: Result<Vec<f64>, _> = raw.split(',').map(|n| n.trim().parse::<f64>()).collect();
    let bad = |why: &str| ApiError::bad_parameter(format!("bbox={raw}: {why}"));
    let n = numbers.map_err(|_| bad("give four numbers (west,south,east,north) or six (with heights)"))?;
    match n[..] {
        [w, s, e, n] | [w, s, _, e, n, _] => Ok([w, s, e, n]),
        _ => Err(bad("give four numbers (west,south,east,north) or six (with heights)")),
    }
}

/// A `bbox` in longitude and latitude. A box whose west edge lies east of its east edge crosses
/// the antimeridian (OGC API – Features: `177,65,-177,70` is the band from 177°E across 180° to
/// 177°W): it is the two boxes either side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxQuery {
    /// The box, or both boxes of one across the antimeridian.
    parts: [Option<Rect<f64>>; 2],
}

impl BoxQuery {
    /// One box that holds every part: what an index is asked first (for a box across the
    /// antimeridian, the band of its latitudes).
    pub fn hull(&self) -> Rect<f64> {
        match self.parts {
            [Some(a), Some(b)] => crate::filter::union(a, b),
            [Some(a), None] | [None, Some(a)] => a,
            [None, None] => crate::filter::nowhere(),
        }
    }

    /// Whether the hull is all there is: no parcel inside it lies outside the box.
    pub fn is_one_box(&self) -> bool {
        self.parts[1].is_none()
    }

    /// Whether `geometry` meets the box (what is checked beyond the hull when the box is two).
    pub fn meets(&self, geometry: &geo::MultiPolygon<f64>) -> bool {
        use geo::Intersects;
        self.parts.iter().flatten().any(|r| geometry.intersects(r))
    }

    pub fn parts(&self) -> impl Iterator<Item = Rect<f64>> + '_ {
        self.parts.iter().flatten().copied()
    }
}

impl From<Rect<f64>> for BoxQuery {
    fn from(r: Rect<f64>) -> Self {
        BoxQuery { parts: [Some(r), None] }
    }
}

/// A bounding box in longitude and latitude: `west,south,east,north` (or six numbers with
/// heights).
pub fn parse_bbox(raw: &str) -> Result<BoxQuery, ApiError> {
    checked_box(raw, box_numbers(raw)?)
}

fn checked_box(raw: &str, [w, s, e, n]: [f64; 4]) -> Result<BoxQuery, ApiError> {
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
        // Across the antimeridian: from the west edge to 180°, and from -180° to the east edge.
        return Ok(BoxQuery { parts: [Some(Rect::new((w, s), (180.0, n))), Some(Rect::new((-180.0, s), (e, n)))] });
    }
    Ok(Rect::new((w, s), (e, n)).into())
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
            ("1,2,3,4,5", "four numbers"),
            ("1,5,3,4", "south is above north"),
            ("1,2,200,4", "longitudes"),
            ("1,-91,3,4", "latitudes"),
            ("1,2,inf,4", "finite"),
        ] {
            let p = Params::parse(Some(&format!("bbox={bbox}")), &["bbox"]).expect("parsed");
            let e = p.bbox(&reference).expect_err(bbox);
            assert!(e.description.contains(why), "{bbox}: {e}");
        }
        let one = Some(BoxQuery::from(Rect::new((108.1, 16.0), (108.2, 16.1))));
        let p = Params::parse(Some("bbox=108.1,16.0,108.2,16.1"), &["bbox"]).expect("parsed");
        assert_eq!(p.bbox(&reference).expect("box"), one);
        // Six numbers: the heights are dropped.
        let p = Params::parse(Some("bbox=108.1,16.0,-5,108.2,16.1,100"), &["bbox"]).expect("parsed");
        assert_eq!(p.bbox(&reference).expect("box"), one);
        // EPSG:4326 is latitude first.
        let p = Params::parse(Some("bbox=16.0,108.1,16.1,108.2&bbox-crs=EPSG:4326"), &["bbox", "bbox-crs"])
            .expect("parsed");
        assert_eq!(p.bbox(&reference).expect("box"), one);
        // Across the antimeridian: two boxes, one either side, and the band of their latitudes
        // as what an index is asked.
        let p = Params::parse(Some("bbox=177,65,-177,70"), &["bbox"]).expect("parsed");
        let across = p.bbox(&reference).expect("box").expect("a box");
        assert!(!across.is_one_box());
        assert_eq!(
            across.parts().collect::<Vec<_>>(),
            vec![Rect::new((177.0, 65.0), (180.0, 70.0)), Rect::new((-180.0, 65.0), (-177.0, 70.0))]
        );
        assert_eq!(across.hull(), Rect::new((-180.0, 65.0), (180.0, 70.0)));
        let square = |x: f64| geo::MultiPolygon::new(vec![geo::Rect::new((x, 66.0), (x + 0.5, 67.0)).to_polygon()]);
        assert!(across.meets(&square(178.0)) && across.meets(&square(-178.0)) && !across.meets(&square(0.0)));
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
