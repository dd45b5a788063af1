//! The communes an upload may change. An uploader's area is a set of 2025 communes (with the old
//! codes merged into them); a record names its commune by the code as received, which may be a
//! pre-2025 code. A code is inside the area only when everything it stands for is: a 2025 commune
//! of the area, or an old code that went wholly into one. An old code split between a commune of
//! the area and one outside it is outside, since replacing it would retire parcels of both.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use landdb_model::reference::CommuneResolution;
use landdb_model::{CommuneCode, ReferenceData};

/// Where an import may write: everywhere (the operator, a national uploader) or a set of communes.
#[derive(Debug, Clone, Copy)]
pub struct WriteArea<'a> {
    communes: Option<&'a HashSet<CommuneCode>>,
    reference: &'a ReferenceData,
}

impl<'a> WriteArea<'a> {
    /// `communes` is the uploader's area as compiled for its policy; `None` is the whole country.
    pub fn new(communes: Option<&'a Arc<HashSet<CommuneCode>>>, reference: &'a ReferenceData) -> Self {
        Self { communes: communes.map(|set| &**set), reference }
    }

    /// Whether a record of commune `code` (as received) may be created, changed or retired.
    pub fn admits(&self, code: &CommuneCode) -> bool {
        let Some(area) = self.communes else { return true };
        match self.reference.resolve_commune(code) {
            CommuneResolution::Current(c) | CommuneResolution::MergedInto(c) => area.contains(&c),
            CommuneResolution::SplitAmong(parts) => parts.iter().all(|c| area.contains(c)),
            // A code in no list can only be inside when the area names it itself.
            CommuneResolution::Unknown => area.contains(code),
        }
    }

    /// The area in words, for an error: its 2025 communes (the first few).
    pub fn describe(&self) -> String {
        const SHOWN: usize = 8;
        let Some(area) = self.communes else { return "the whole country".to_owned() };
        let current: BTreeSet<&CommuneCode> = area.iter().filter(|c| self.reference.commune(c).is_some()).collect();
        let mut names: Vec<String> = current.iter().take(SHOWN).map(ToString::to_string).collect();
        if current.len() > SHOWN {
            names.push(format!("and {} more", current.len() - SHOWN));
        }
        match current.len() {
            0 => "an area with no commune".to_owned(),
            1 => format!("the uploader's area (commune {})", names.join(", ")),
            _ => format!("the uploader's area (communes {})", names.join(", ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: &str) -> CommuneCode {
        CommuneCode::parse(c).expect("valid")
    }

    fn area(reference: &ReferenceData, communes: &[&str]) -> Arc<HashSet<CommuneCode>> {
        let mut set = HashSet::new();
        for c in communes {
            set.extend(reference.old_codes_merged_into(&code(c)));
            set.insert(code(c));
        }
        Arc::new(set)
    }

    #[test]
    fn old_codes_are_inside_only_when_wholly_inside() {
        let reference = ReferenceData::embedded().expect("reference");
        // Hải Vân (20194) holds Hòa Hiệp Bắc (20194) wholly and Hòa Liên (20296) only in part: the
        // rest of Hòa Liên is in Liên Chiểu (20197).
        let set = area(&reference, &["20194"]);
        let hai_van = WriteArea::new(Some(&set), &reference);
        assert!(hai_van.admits(&code("20194")));
        assert!(hai_van.admits(&code("20195")), "Hòa Hiệp Nam went wholly into Hải Vân");
        assert!(!hai_van.admits(&code("20296")), "Hòa Liên is split with Liên Chiểu");
        assert!(!hai_van.admits(&code("20197")));
        assert!(!hai_van.admits(&code("20203")), "a 2024 Thanh Khê code");
        let both = area(&reference, &["20194", "20197"]);
        assert!(WriteArea::new(Some(&both), &reference).admits(&code("20296")));
        // A code retired in 2024 reaches its 2025 ward through the earlier merger.
        let thanh_khe = area(&reference, &["20209"]);
        assert!(WriteArea::new(Some(&thanh_khe), &reference).admits(&code("20203")));
        assert!(WriteArea::new(None, &reference).admits(&code("99999")));
        assert!(hai_van.describe().contains("20194"), "{}", hai_van.describe());
    }
}
