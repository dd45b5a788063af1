//! Administrative and land-use codes, as validated newtypes so a malformed code cannot travel further.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("commune code {0:?} is not 1 to 5 digits")]
    Commune(String),
    #[error("province code {0:?} is not 1 or 2 digits")]
    Province(String),
    #[error("land-use code {0:?} is not 2 to 4 letters")]
    LandUse(String),
}

fn digits_padded(raw: &str, width: usize) -> Option<String> {
    let trimmed = raw.trim();
    // Numbers stored as numbers arrive as "20203.0" from some exports.
    let trimmed = trimmed.strip_suffix(".0").unwrap_or(trimmed);
    if trimmed.is_empty() || trimmed.len() > width || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("{trimmed:0>width$}"))
}

/// A commune code (mã xã): five digits, zero-padded (Decision 124/2004/QĐ-TTg).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommuneCode(String);

impl CommuneCode {
    /// Accepts 1 to 5 digits and pads them: `"2203"` and `"02203"` are the same commune.
    pub fn parse(raw: &str) -> Result<Self, CodeError> {
        digits_padded(raw, 5).map(Self).ok_or_else(|| CodeError::Commune(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The commune's number, for range lookups against the national numbering.
    pub fn number(&self) -> u32 {
        // Always five ASCII digits by construction.
        self.0.parse().unwrap_or_default()
    }
}

/// A province code: two digits, zero-padded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProvinceCode(String);

impl ProvinceCode {
    pub fn parse(raw: &str) -> Result<Self, CodeError> {
        digits_padded(raw, 2).map(Self).ok_or_else(|| CodeError::Province(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One land-use code (ký hiệu mục đích sử dụng đất), upper case, e.g. `ODT`. A parcel can carry
/// several (`ODT+CLN` arrives as two codes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LandUseCode(String);

impl LandUseCode {
    pub fn parse(raw: &str) -> Result<Self, CodeError> {
        let code = raw.trim().to_uppercase();
        if (2..=4).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(code))
        } else {
            Err(CodeError::LandUse(raw.to_owned()))
        }
    }

    /// Splits a multi-purpose field such as `ODT+CLN` or `ODT, CLN` into its codes, in order,
    /// without repeats.
    pub fn parse_list(raw: &str) -> Result<Vec<Self>, CodeError> {
        let mut codes: Vec<Self> = Vec::new();
        for part in raw.split(['+', ',', ';', '/']).map(str::trim).filter(|p| !p.is_empty()) {
            let code = Self::parse(part)?;
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        Ok(codes)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_code_impls {
    ($($ty:ident),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $ty {
            type Error = CodeError;
            fn try_from(raw: String) -> Result<Self, CodeError> {
                Self::parse(&raw)
            }
        }
        impl From<$ty> for String {
            fn from(code: $ty) -> String {
                code.0
            }
        }
    )*};
}
string_code_impls!(CommuneCode, ProvinceCode, LandUseCode);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commune_codes_are_padded_to_five_digits() {
        assert_eq!(CommuneCode::parse("2203").map(|c| c.0), Ok("02203".to_owned()));
        assert_eq!(CommuneCode::parse(" 20203 ").map(|c| c.0), Ok("20203".to_owned()));
        assert_eq!(CommuneCode::parse("20203.0").map(|c| c.0), Ok("20203".to_owned()));
        assert!(CommuneCode::parse("202030").is_err());
        assert!(CommuneCode::parse("2O203").is_err());
        assert!(CommuneCode::parse("").is_err());
    }

    #[test]
    fn multi_purpose_land_use_is_split() {
        let codes = LandUseCode::parse_list("ODT+CLN").expect("valid list");
        let codes: Vec<&str> = codes.iter().map(LandUseCode::as_str).collect();
        assert_eq!(codes, ["ODT", "CLN"]);
        let codes = LandUseCode::parse_list(" odt , odt; BHK ").expect("valid list");
        assert_eq!(codes.len(), 2);
        assert!(LandUseCode::parse_list("OD1").is_err());
        assert!(LandUseCode::parse_list("").expect("empty is allowed").is_empty());
    }
}
