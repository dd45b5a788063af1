//! Coordinate systems answers can be given in (OGC API – Features Part 2, `crs`): WGS84 as
//! GeoJSON has it (CRS84, the default), EPSG:4326 (latitude first, as EPSG defines it), VN-2000
//! geographic (EPSG:4756, latitude first), every VN-2000 TM-3 zone a province uses (with the
//! datum shift in the right sign, `landdb_model::zone`), and UTM 48N/49N. Surveyors work in the
//! TM-3 zone of their province; the answer says which CRS it is in (`Content-Crs`).

use landdb_crs::Transformer;
use landdb_model::{ReferenceData, zone::VN2000_TOWGS84};

use crate::ogc::{ApiError, CRS84};

const EPSG_PREFIX: &str = "http://www.opengis.net/def/crs/EPSG/0/";

/// The CRS an answer is written in.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputCrs {
    /// Its URI, for `Content-Crs`.
    pub uri: String,
    /// PROJ's definition of it; `None` for CRS84 (the stored coordinates, written as they are).
    definition: Option<String>,
    /// Whether the CRS puts latitude (northing) first.
    pub latitude_first: bool,
    /// Decimal places worth writing: a tenth of a millimetre.
    pub decimals: i32,
}

impl OutputCrs {
    pub fn crs84() -> Self {
        OutputCrs { uri: CRS84.to_owned(), definition: None, latitude_first: false, decimals: 9 }
    }

    /// Every CRS this server answers in, as URIs.
    pub fn supported(reference: &ReferenceData) -> Vec<String> {
        let mut uris = vec![CRS84.to_owned(), format!("{EPSG_PREFIX}4326"), format!("{EPSG_PREFIX}4756")];
        uris.extend(reference.zones().iter().map(|z| format!("{EPSG_PREFIX}{}", z.epsg)));
        uris.extend([format!("{EPSG_PREFIX}32648"), format!("{EPSG_PREFIX}32649")]);
        uris
    }

    /// The CRS a `crs` parameter names (a URI, or `EPSG:n`).
    pub fn parse(raw: &str, reference: &ReferenceData) -> Result<Self, ApiError> {
        if raw == CRS84 || raw.eq_ignore_ascii_case("CRS84") {
            return Ok(Self::crs84());
        }
        let code =
            raw.strip_prefix(EPSG_PREFIX).or_else(|| raw.strip_prefix("EPSG:")).and_then(|c| c.parse::<u32>().ok());
        let unknown = || {
            ApiError::bad_parameter(format!(
                "crs={raw}: not a coordinate system this server answers in; the collection's `crs` list names them"
            ))
        };
        let code = code.ok_or_else(unknown)?;
        let uri = format!("{EPSG_PREFIX}{code}");
        let geographic = |definition: String| OutputCrs {
            uri: uri.clone(),
            definition: Some(definition),
            latitude_first: true,
            decimals: 9,
        };
        let projected = |definition: String| OutputCrs {
            uri: uri.clone(),
            definition: Some(definition),
            latitude_first: false,
            decimals: 4,
        };
        Ok(match code {
            4326 => OutputCrs { uri, definition: None, latitude_first: true, decimals: 9 },
            4756 => geographic(format!("+proj=longlat +ellps=WGS84 +towgs84={VN2000_TOWGS84} +no_defs")),
            32648 | 32649 => projected(format!("EPSG:{code}")),
            _ => match reference.zones().into_iter().find(|z| z.epsg == code) {
                Some(zone) => projected(zone.proj_string()),
                None => return Err(unknown()),
            },
        })
    }

    /// PROJ's definition of the CRS (`EPSG:n` or a PROJ string); `None` for CRS84.
    pub fn definition(&self) -> Option<&str> {
        self.definition.as_deref()
    }

    /// A transformer from the stored WGS84 longitude/latitude, if coordinates must change.
    pub fn transformer(&self) -> Result<Option<Transformer>, ApiError> {
        self.definition
            .as_deref()
            .map(|d| Transformer::between(landdb_crs::WGS84, d).map_err(|e| ApiError::internal(&e)))
            .transpose()
    }

    /// A transformer into the stored WGS84 longitude/latitude, if coordinates must change.
    pub fn to_wgs84(&self) -> Result<Option<Transformer>, ApiError> {
        self.definition
            .as_deref()
            .map(|d| Transformer::between(d, landdb_crs::WGS84).map_err(|e| ApiError::internal(&e)))
            .transpose()
    }

    /// A position given in this CRS (in its axis order), as WGS84 longitude and latitude.
    pub fn position_to_wgs84(&self, first: f64, second: f64) -> Result<(f64, f64), ApiError> {
        self.reader()?.position(first, second)
    }

    /// What reads positions given in this CRS, its transformer made once for all of them (a
    /// PROJ transformer costs far more to make than a position to take through it).
    pub fn reader(&self) -> Result<PositionReader<'_>, ApiError> {
        Ok(PositionReader { crs: self, to_wgs84: self.to_wgs84()? })
    }
    /// A box given in this CRS (`bbox` with `bbox-crs`) as the WGS84 box that covers it: its
    /// edges are followed, not only its corners, since a straight edge in a projection bends in
    /// longitude and latitude.
    pub fn box_to_wgs84(&self, corners: [f64; 4]) -> Result<geo::Rect<f64>, ApiError> {
        let [a, b, c, d] = corners;
        let (min, max) = ((a, b), (c, d));
        if self.definition.is_none() {
            let (min, max) = if self.latitude_first { ((b, a), (d, c)) } else { (min, max) };
            return Ok(geo::Rect::new(min, max));
        }
        const STEPS: usize = 16;
        let reader = self.reader()?;
        let mut bounds: Option<geo::Rect<f64>> = None;
        for i in 0..=STEPS {
            let t = i as f64 / STEPS as f64;
            let along = |from: f64, to: f64| from + (to - from) * t;
            for (p, q) in [
                (along(min.0, max.0), min.1),
                (along(min.0, max.0), max.1),
                (min.0, along(min.1, max.1)),
                (max.0, along(min.1, max.1)),
            ] {
                let (x, y) = reader.position(p, q)?;
                bounds = Some(match bounds {
                    None => geo::Rect::new((x, y), (x, y)),
                    Some(r) => {
                        geo::Rect::new((r.min().x.min(x), r.min().y.min(y)), (r.max().x.max(x), r.max().y.max(y)))
                    }
                });
            }
        }
        bounds.ok_or_else(|| ApiError::bad_parameter("bbox: empty"))
    }
}

/// Reads positions given in a CRS ([`OutputCrs::reader`]) as WGS84 longitude and latitude.
#[derive(Debug)]
pub struct PositionReader<'c> {
    crs: &'c OutputCrs,
    to_wgs84: Option<Transformer>,
}

impl PositionReader<'_> {
    /// A position in the CRS's axis order, as WGS84 longitude and latitude.
    pub fn position(&self, first: f64, second: f64) -> Result<(f64, f64), ApiError> {
        let (x, y) = if self.crs.latitude_first { (second, first) } else { (first, second) };
        match &self.to_wgs84 {
            None => Ok((x, y)),
            Some(t) => {
                let c = t.coord(geo::coord! { x: x, y: y }).map_err(|e| {
                    ApiError::bad_parameter(format!("({first}, {second}) cannot be taken from {}: {e}", self.crs.uri))
                })?;
                Ok((c.x, c.y))
            }
        }
    }
}
