//! Parcels as GeoJSON features (RFC 7946), written straight into the response body: coordinates
//! in the shortest form that reads back as the same double, properties chosen by the caller
//! within what their [`Access`] allows.

use std::fmt::Write as _;

use geo::MultiPolygon;
use landdb_engine::Parcel;

use crate::access::Access;
use crate::ogc::ApiError;

/// A property of a parcel feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    NationalId,
    Commune,
    Sheet,
    Number,
    LandUse,
    AreaM2,
    /// Personal data: shown only with [`Access::personal_data`].
    Address,
}

impl Field {
    pub const ALL: [Field; 7] =
        [Field::NationalId, Field::Commune, Field::Sheet, Field::Number, Field::LandUse, Field::AreaM2, Field::Address];

    pub fn name(self) -> &'static str {
        match self {
            Field::NationalId => "national_id",
            Field::Commune => "commune",
            Field::Sheet => "sheet",
            Field::Number => "number",
            Field::LandUse => "land_use",
            Field::AreaM2 => "area_m2",
            Field::Address => "address",
        }
    }

    pub fn is_personal(self) -> bool {
        self == Field::Address
    }

    /// Every field the caller may see.
    pub fn visible(access: &Access) -> Vec<Field> {
        Field::ALL.into_iter().filter(|f| access.personal_data || !f.is_personal()).collect()
    }

    /// The fields named in a `properties` parameter, or all visible ones. A name the caller may
    /// not see is refused as unknown, not as forbidden: it gives nothing away.
    pub fn selected(raw: Option<&str>, access: &Access) -> Result<Vec<Field>, ApiError> {
        let visible = Field::visible(access);
        let Some(raw) = raw else { return Ok(visible) };
        raw.split(',')
            .filter(|n| !n.trim().is_empty())
            .map(|name| {
                let name = name.trim();
                visible.iter().copied().find(|f| f.name() == name).ok_or_else(|| {
                    let names: Vec<&str> = visible.iter().map(|f| f.name()).collect();
                    ApiError::bad_parameter(format!(
                        "properties: `{name}` is not a property of parcels; they have {}",
                        names.join(", ")
                    ))
                })
            })
            .collect()
    }
}

/// Appends the parcel as a GeoJSON feature with `fields`; its `id` is the version.
pub fn write_feature(out: &mut String, parcel: &Parcel<'_>, fields: &[Field]) {
    let _ = write!(out, "{{\"type\":\"Feature\",\"id\":{},\"geometry\":", parcel.version().0);
    write_geometry(out, &parcel.geometry());
    out.push_str(",\"properties\":{");
    let _ = write!(out, "\"version\":{}", parcel.version().0);
    for field in fields {
        let _ = write!(out, ",\"{}\":", field.name());
        match field {
            Field::NationalId => json_string(out, parcel.national_id().as_str()),
            Field::Commune => json_string(out, parcel.commune().as_str()),
            Field::Sheet => json_string(out, &parcel.key().sheet),
            Field::Number => json_string(out, &parcel.key().number),
            Field::LandUse => {
                out.push('[');
                for (i, code) in parcel.land_use().iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_string(out, code.as_str());
                }
                out.push(']');
            }
            Field::AreaM2 => {
                // To the square centimetre: the boundary is exact, the area a derived figure.
                let _ = write!(out, "{}", (parcel.area_m2() * 1e4).round() / 1e4);
            }
            Field::Address => match parcel.address() {
                Some(a) => json_string(out, &a),
                None => out.push_str("null"),
            },
        }
    }
    out.push_str("}}");
}

fn json_string(out: &mut String, s: &str) {
    // serde_json escapes exactly as JSON requires.
    out.push_str(&serde_json::Value::from(s).to_string());
}

/// A multipolygon in GeoJSON; coordinates print in the shortest form that reads back exactly.
pub fn write_geometry(out: &mut String, g: &MultiPolygon<f64>) {
    out.push_str("{\"type\":\"MultiPolygon\",\"coordinates\":[");
    for (i, polygon) in g.0.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        for (j, ring) in std::iter::once(polygon.exterior()).chain(polygon.interiors()).enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push('[');
            for (k, c) in ring.0.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                let _ = write!(out, "[{},{}]", c.x, c.y);
            }
            out.push(']');
        }
        out.push(']');
    }
    out.push_str("]}");
}
