//! VN-2000 TM-3 zones: the cadastral projection of each province (Circular 973/2001/TT-TCĐC).

use serde::{Deserialize, Serialize};

/// The official VN-2000 → WGS84 shift (EPSG transformation 6960, Decision 05/2007/QĐ-BTNMT) in
/// PROJ's Position Vector convention: the rotations are the negated Coordinate Frame values of the
/// decision. Copying them unnegated, as many published strings do, is off by about 0.5 m.
pub const VN2000_TOWGS84: &str =
    "-191.90441429,-39.30318279,-111.45032835,0.00928836,-0.01975479,0.00427372,0.252906278";

/// A TM-3 zone: scale 0.9999, false easting 500 000 m, a central meridian per province.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Vn2000Zone {
    /// Central meridian (kinh tuyến trục), decimal degrees east.
    pub central_meridian: f64,
    pub epsg: u32,
}

impl Vn2000Zone {
    pub const SCALE: f64 = 0.9999;
    pub const FALSE_EASTING: f64 = 500_000.0;

    /// The PROJ definition with the correct datum shift.
    pub fn proj_string(&self) -> String {
        format!(
            "+proj=tmerc +lat_0=0 +lon_0={} +k={} +x_0={} +y_0=0 +ellps=WGS84 +towgs84={VN2000_TOWGS84} +units=m +no_defs",
            self.central_meridian,
            Self::SCALE,
            Self::FALSE_EASTING
        )
    }

    /// `EPSG:NNNN`, the name recorded as a parcel's source CRS.
    pub fn crs_name(&self) -> String {
        format!("EPSG:{}", self.epsg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proj_string_negates_the_rotations() {
        let zone = Vn2000Zone { central_meridian: 105.75, epsg: 9210 };
        let s = zone.proj_string();
        assert!(s.contains("+lon_0=105.75 "));
        assert!(s.contains("+k=0.9999 "));
        assert!(s.contains(",0.00928836,-0.01975479,0.00427372,"), "{s}");
        assert_eq!(zone.crs_name(), "EPSG:9210");
    }
}
