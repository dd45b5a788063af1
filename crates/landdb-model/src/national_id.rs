//! The national parcel identifier: a 12-character GeoHash of a WGS84 interior point of the parcel
//! (Circular 19/2026; format partly unconfirmed, see shared/domain/cadastre.md). 12 characters is a
//! cell of about 4 × 2 cm, so the ID is stable under re-survey noise below that.

use std::fmt;

use geo::{Coord, MultiPolygon, Point, Polygon};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NationalParcelId(String);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NationalIdError {
    #[error("national parcel ID {0:?} is not 12 GeoHash characters")]
    Malformed(String),
    #[error("interior point ({lon}, {lat}) is not a valid WGS84 position")]
    OutOfRange { lon: f64, lat: f64 },
}

impl NationalParcelId {
    pub const LEN: usize = 12;

    /// The ID of the parcel whose interior point (already in WGS84) is `point`.
    pub fn from_wgs84(point: Point<f64>) -> Result<Self, NationalIdError> {
        let (lon, lat) = (point.x(), point.y());
        geohash::encode(Coord { x: lon, y: lat }, Self::LEN)
            .map(Self)
            .map_err(|_| NationalIdError::OutOfRange { lon, lat })
    }

    pub fn parse(raw: &str) -> Result<Self, NationalIdError> {
        let id = raw.trim().to_ascii_lowercase();
        let valid = id.len() == Self::LEN && geohash::decode(&id).is_ok();
        if valid { Ok(Self(id)) } else { Err(NationalIdError::Malformed(raw.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The centre of the ID's GeoHash cell (within about 2 cm of the interior point).
    pub fn position(&self) -> Point<f64> {
        geohash::decode(&self.0).map(|(c, _, _)| Point::from(c)).unwrap_or_else(|_| Point::new(0.0, 0.0))
    }
}

impl fmt::Display for NationalParcelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for NationalParcelId {
    type Error = NationalIdError;
    fn try_from(raw: String) -> Result<Self, NationalIdError> {
        Self::parse(&raw)
    }
}

impl From<NationalParcelId> for String {
    fn from(id: NationalParcelId) -> String {
        id.0
    }
}

/// The pole of inaccessibility of the parcel's largest polygon: a point well inside it, unlike a
/// centroid, which can fall outside an L- or U-shaped parcel. The search stops at 1/20 of the
/// polygon's shorter side: finer costs time (polylabel's work grows quickly as the tolerance
/// shrinks against a long road strip) and buys nothing, since any deterministic point well inside
/// the parcel serves as its identifier.
pub fn interior_point(geometry: &MultiPolygon<f64>) -> Option<Point<f64>> {
    use geo::{Area, BoundingRect};
    let largest: &Polygon<f64> = geometry.0.iter().max_by(|a, b| a.unsigned_area().total_cmp(&b.unsigned_area()))?;
    let rect = largest.bounding_rect()?;
    let tolerance = (rect.width().min(rect.height()) / 20.0).max(f64::MIN_POSITIVE);
    polylabel::polylabel(largest, &tolerance).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Contains, polygon};

    #[test]
    fn id_is_twelve_geohash_characters_and_decodes_near_the_point() {
        let p = Point::new(108.206, 16.0772);
        let id = NationalParcelId::from_wgs84(p).expect("valid point");
        assert_eq!(id.as_str().len(), 12);
        let back = id.position();
        assert!((back.x() - p.x()).abs() < 1e-6 && (back.y() - p.y()).abs() < 1e-6);
        assert_eq!(NationalParcelId::parse(&id.as_str().to_uppercase()), Ok(id));
        assert!(NationalParcelId::parse("w6ugq").is_err());
        assert!(NationalParcelId::parse("w6ugqaaaaaai").is_err(), "'i' is not in the GeoHash alphabet");
    }

    #[test]
    fn interior_point_of_a_u_shape_is_inside_it() {
        // A U-shaped parcel whose centroid lies in the notch.
        let u = polygon![
            (x: 0.0, y: 0.0), (x: 30.0, y: 0.0), (x: 30.0, y: 30.0), (x: 20.0, y: 30.0),
            (x: 20.0, y: 10.0), (x: 10.0, y: 10.0), (x: 10.0, y: 30.0), (x: 0.0, y: 30.0),
        ];
        let mp = MultiPolygon(vec![u.clone()]);
        let p = interior_point(&mp).expect("non-empty");
        assert!(u.contains(&p));
        assert!(interior_point(&MultiPolygon(vec![])).is_none());
    }
}
