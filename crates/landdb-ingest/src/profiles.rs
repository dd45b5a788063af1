//! Field mapping: which source field feeds which canonical attribute. The built-in profile
//! (`profiles/fields.csv`) knows the common layouts (VBDLIS names and their 10-character
//! Shapefile cuts, legacy lower-case names, upper-case Oracle names); a mapping file of the same
//! form handles any other. Unmapped fields are kept as extra attributes.

use std::collections::HashMap;
use std::path::Path;

/// A canonical attribute that source fields map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Canonical {
    CommuneCode,
    Sheet,
    Number,
    MeasuredArea,
    LegalArea,
    LandUse,
    Address,
    CertificateNo,
    Owner,
    OwnerBirthYear,
    /// The first holder's 12-digit citizen ID (số định danh cá nhân, CCCD).
    OwnerCitizenId,
    /// The first holder's own address (where they live, not where the parcel is).
    OwnerAddress,
    SecondOwner,
}

/// What a canonical attribute holds, and so which source values it accepts: nothing is coerced
/// (a boolean is never a code, `1e20` is never a sheet number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Part of the natural key: text, or a whole number (see [`crate::source::AttrValue::code`]).
    Code,
    /// A quantity: a finite number, or text that reads as one.
    Number,
    /// Free text (numbers are taken as written).
    Text,
}

impl Canonical {
    pub fn kind(self) -> FieldKind {
        match self {
            Self::CommuneCode | Self::Sheet | Self::Number => FieldKind::Code,
            Self::MeasuredArea | Self::LegalArea | Self::OwnerBirthYear => FieldKind::Number,
            Self::LandUse
            | Self::Address
            | Self::CertificateNo
            | Self::Owner
            | Self::SecondOwner
            | Self::OwnerAddress
            // Text, never a code: a code's reasons quote the value, and a citizen ID must not be
            // written in clear into a report (see `normalize`, which checks its format).
            | Self::OwnerCitizenId => FieldKind::Text,
        }
    }

    /// A right holder's attribute: personal data, never quoted in a reason (reasons are kept in
    /// clear and read by people without the right to see it).
    pub fn is_personal(self) -> bool {
        matches!(
            self,
            Self::Owner | Self::OwnerBirthYear | Self::OwnerCitizenId | Self::OwnerAddress | Self::SecondOwner
        )
    }

    fn parse(raw: &str) -> Option<Self> {
        Some(match raw.trim() {
            "commune_code" => Self::CommuneCode,
            "sheet" => Self::Sheet,
            "number" => Self::Number,
            "measured_area" => Self::MeasuredArea,
            "legal_area" => Self::LegalArea,
            "land_use" => Self::LandUse,
            "address" => Self::Address,
            "certificate_no" => Self::CertificateNo,
            "owner" => Self::Owner,
            "owner_birth_year" => Self::OwnerBirthYear,
            "owner_citizen_id" => Self::OwnerCitizenId,
            "owner_address" => Self::OwnerAddress,
            "second_owner" => Self::SecondOwner,
            _ => return None,
        })
    }
}

/// Source field name (lower-cased) → canonical attribute.
#[derive(Debug, Clone, Default)]
pub struct FieldMapping {
    by_name: HashMap<String, Canonical>,
}

impl FieldMapping {
    /// The built-in profile.
    pub fn builtin() -> Result<Self, String> {
        Self::parse(include_str!("../profiles/fields.csv"), "profiles/fields.csv")
    }

    /// The built-in profile with a mapping file's entries added (they win on conflicts).
    pub fn with_file(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read mapping file {}: {e}", path.display()))?;
        let mut mapping = Self::builtin()?;
        mapping.by_name.extend(Self::parse(&text, &path.display().to_string())?.by_name);
        Ok(mapping)
    }

    /// `canonical,source_names` with names separated by `|`.
    fn parse(text: &str, file: &str) -> Result<Self, String> {
        let mut by_name = HashMap::new();
        for (n, line) in text.lines().enumerate().skip(1) {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (canonical, names) =
                line.split_once(',').ok_or_else(|| format!("{file}, line {}: expected canonical,names", n + 1))?;
            let canonical = Canonical::parse(canonical)
                .ok_or_else(|| format!("{file}, line {}: unknown canonical attribute {canonical:?}", n + 1))?;
            for name in names.split('|').map(str::trim).filter(|s| !s.is_empty()) {
                by_name.insert(name.to_lowercase(), canonical);
            }
        }
        Ok(Self { by_name })
    }

    pub fn canonical(&self, source_field: &str) -> Option<Canonical> {
        self.by_name.get(&source_field.to_lowercase()).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_layouts_are_recognised_including_shapefile_cuts() {
        let m = FieldMapping::builtin().expect("built in");
        assert_eq!(m.canonical("SoHieuToBanDo"), Some(Canonical::Sheet));
        assert_eq!(m.canonical("SoHieuToBa"), Some(Canonical::Sheet));
        assert_eq!(m.canonical("so_to"), Some(Canonical::Sheet));
        assert_eq!(m.canonical("SOHIEUTOBANDO"), Some(Canonical::Sheet));
        assert_eq!(m.canonical("Tong_dien_"), Some(Canonical::MeasuredArea));
        assert_eq!(m.canonical("Chu_SD"), Some(Canonical::Owner));
        assert_eq!(m.canonical("SoDinhDanhC1"), Some(Canonical::OwnerCitizenId));
        assert_eq!(m.canonical("SoDinhDanh"), Some(Canonical::OwnerCitizenId));
        assert_eq!(m.canonical("CCCD"), Some(Canonical::OwnerCitizenId));
        assert_eq!(m.canonical("OBJECTID"), None);
    }
}
