//! The 12-digit citizen ID (số định danh cá nhân, on the chip-based citizen card) by which the
//! national population database identifies right holders (Circular 59/2021/TT-BCA, earlier
//! 07/2016): digits 1–3 the province where the birth was registered (`0` and the province's
//! pre-2025 code), digit 4 the century of birth and gender, digits 5–6 the last two digits of
//! the birth year, digits 7–12 a sequence.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::reference::ReferenceData;

/// A citizen ID whose format was checked: 12 ASCII digits, a province that exists, a birth year
/// not in the future.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String")]
pub struct CitizenId(String);

/// Why a text is not a citizen ID, said so that the person who typed it can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CitizenIdError {
    #[error("a citizen ID is 12 digits; this has {0}")]
    Length(String),
    #[error("a citizen ID is 12 digits; character {0} is not a digit")]
    NotDigit(usize),
    #[error("a citizen ID begins with 0 and a province's code (001 Hà Nội to 096 Cà Mau); {0} is no province's")]
    Province(String),
    #[error(
        "the fourth digit of a citizen ID gives the century of birth; {digit} gives a birth in {year}, which is in the future"
    )]
    Future { digit: u8, year: i32 },
}

impl CitizenId {
    /// Checks `raw` (surrounding spaces ignored) against the format, with `this_year` the year
    /// of today: a citizen cannot be born after it.
    pub fn parse(raw: &str, reference: &ReferenceData, this_year: i32) -> Result<CitizenId, CitizenIdError> {
        let id = raw.trim();
        let count = id.chars().count();
        if count != 12 {
            return Err(CitizenIdError::Length(match count {
                1 => "1 character".to_owned(),
                n => format!("{n} characters"),
            }));
        }
        if let Some(at) = id.chars().position(|c| !c.is_ascii_digit()) {
            return Err(CitizenIdError::NotDigit(at + 1));
        }
        let province = &id[..3];
        if !province.starts_with('0') || reference.old_province(&province[1..]).is_none() {
            return Err(CitizenIdError::Province(province.to_owned()));
        }
        let parsed = CitizenId(id.to_owned());
        let year = parsed.birth_year();
        if year > this_year {
            return Err(CitizenIdError::Future { digit: parsed.digit(3), year });
        }
        Ok(parsed)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn digit(&self, at: usize) -> u8 {
        self.0.as_bytes()[at] - b'0'
    }

    /// The pre-2025 province where the birth was registered (`48`).
    pub fn province_code(&self) -> &str {
        &self.0[1..3]
    }

    /// The year of birth: the fourth digit's century (0–1 the 1900s, 2–3 the 2000s, and so on
    /// by twos) and the fifth and sixth digits.
    pub fn birth_year(&self) -> i32 {
        1900 + 100 * i32::from(self.digit(3) / 2) + i32::from(self.digit(4)) * 10 + i32::from(self.digit(5))
    }

    /// Whether the fourth digit is a woman's (odd).
    pub fn is_female(&self) -> bool {
        self.digit(3) % 2 == 1
    }
}

impl From<CitizenId> for String {
    fn from(id: CitizenId) -> String {
        id.0
    }
}

/// Never printed whole by accident: logs and debug output show the province and the last two
/// digits only.
impl fmt::Debug for CitizenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CitizenId({}…{})", &self.0[..3], &self.0[10..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference() -> ReferenceData {
        ReferenceData::embedded().expect("reference data")
    }

    #[test]
    fn a_well_formed_id_reads_its_province_century_gender_and_year() {
        let r = reference();
        let id = CitizenId::parse(" 048185000123 ", &r, 2026).expect("valid");
        assert_eq!(id.as_str(), "048185000123");
        assert_eq!(id.province_code(), "48");
        assert_eq!(id.birth_year(), 1985);
        assert!(id.is_female());
        let id = CitizenId::parse("079205000001", &r, 2026).expect("valid");
        assert_eq!(id.birth_year(), 2005);
        assert!(!id.is_female());
    }

    #[test]
    fn each_kind_of_wrong_id_is_refused_with_its_reason() {
        let r = reference();
        let refused = |raw: &str| CitizenId::parse(raw, &r, 2026).expect_err(raw).to_string();
        assert!(refused("04818500012").contains("has 11 characters"), "{}", refused("04818500012"));
        assert!(refused("0481850001234").contains("13 characters"));
        assert!(refused("04818500012x").contains("character 12 is not a digit"));
        assert!(refused("０48185000123").contains("character 1"));
        assert!(refused("003185000123").contains("003 is no province's"));
        assert!(refused("148185000123").contains("148 is no province's"));
        assert!(refused("048430000123").contains("2130"), "{}", refused("048430000123"));
        assert!(refused("048227000123").contains("2027"));
        assert!(refused("").contains("0 characters"));
    }

    proptest! {
        #[test]
        fn any_text_is_either_an_id_of_its_own_digits_or_refused(raw in "\\PC{0,14}|0[0-9]{11}") {
            let r = reference();
            if let Ok(id) = CitizenId::parse(&raw, &r, 2026) {
                prop_assert_eq!(id.as_str(), raw.trim());
                prop_assert!(id.birth_year() <= 2026 && id.birth_year() >= 1900);
                prop_assert!(r.old_province(id.province_code()).is_some());
            }
        }
    }
}
