//! One generated source record: attributes as a land office would have them and the boundary in
//! TM-3 metres, kept as a raw ring so that defects (unclosed rings, spikes) survive to the file.

use geo::Coord;

/// A record before it is written in some layout and format.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// As written in the file: the commune's current code, or an obsolete one when that defect is
    /// injected.
    pub commune_code: String,
    pub sheet: u32,
    pub number: u32,
    /// One code, or several joined by `+`.
    pub land_use: String,
    /// Measured area (DienTich), m², to 0.1.
    pub area: f64,
    /// Legal area on the certificate (DienTichPhapLy), m².
    pub legal_area: Option<f64>,
    pub address: Option<String>,
    pub owner: Option<String>,
    pub owner_birth_year: Option<i32>,
    /// The first holder's 12-digit citizen ID.
    pub owner_citizen_id: Option<String>,
    pub second_owner: Option<String>,
    pub certificate: Option<String>,
    /// The exterior ring as written (closed unless a defect says otherwise); `None` is a null
    /// geometry.
    pub ring: Option<Vec<Coord<f64>>>,
}

impl Record {
    /// `commune/sheet/number`, the natural key as the manifest lists it.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.commune_code, self.sheet, self.number)
    }
}
