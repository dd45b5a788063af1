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

    /// A transformer from the stored WGS84 longitude/latitude, if coordinates must change.
    pub fn transformer(&self) -> Result<Option<Transformer>, ApiError> {
        self.definition
            .as_deref()
            .map(|d| Transformer::between(landdb_crs::WGS84, d).map_err(|e| ApiError::internal(&e)))
            .transpose()
    }
}
