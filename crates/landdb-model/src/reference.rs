//! Reference data loaded at start-up: administrative units (after the 2025 merger, with the old
//! units merged into each, and the codes retired by earlier mergers that files still carry), the
//! VN-2000 zone of every pre-2025 province, and land-use codes (legacy
//! and 2024 lists with a mapping). The files in `crates/landdb-model/reference/` are compiled in as
//! the defaults; an operator can replace any of them by putting a file of the same name in a
//! reference directory (`--reference-dir`), without a rebuild.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::{CommuneCode, LandUseCode, ProvinceCode, Vn2000Zone};

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("cannot read reference file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("reference file {file}, line {line}: {message}")]
    Parse { file: String, line: u64, message: String },
    #[error("reference file {file}: {message}")]
    Inconsistent { file: String, message: String },
}

/// A province after 1 July 2025.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Province {
    pub code: ProvinceCode,
    pub name: String,
}

/// A commune after 1 July 2025.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commune {
    pub code: CommuneCode,
    pub name: String,
    pub province_code: ProvinceCode,
}

/// A province before 1 July 2025, with the range of commune numbers it owned; its TM-3 zone is
/// the zone of every parcel in that range, whatever province the parcel belongs to now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldProvince {
    pub code: ProvinceCode,
    pub name: String,
    pub new_province_code: ProvinceCode,
    pub first_commune_code: CommuneCode,
    pub last_commune_code: CommuneCode,
}

/// Old communes numbered inside another province's block (Hà Nội's communes from Hà Tây, Mê Linh
/// and Lương Sơn since 2008, for instance): checked before the province ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommuneEnclave {
    pub first_commune_code: CommuneCode,
    pub last_commune_code: CommuneCode,
    pub old_province_code: ProvinceCode,
    pub note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeType {
    Full,
    Partial,
}

/// One old commune merged (wholly or partly) into a 2025 commune.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommuneMerge {
    pub code: CommuneCode,
    pub old_code: CommuneCode,
    pub old_name: String,
    pub merge_type: MergeType,
}

/// An old commune merged wholly into another before 1 July 2025 (the 2024 mergers, for instance):
/// its successor `code` is a unit the 2025 merges know, so the old code still reaches a 2025
/// commune through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierMerge {
    pub old_code: CommuneCode,
    pub code: CommuneCode,
    pub old_name: String,
    pub effective: NaiveDate,
    /// The act that made the merger (a resolution number).
    pub act: String,
}

/// How many earlier mergers a code may pass through before it reaches the 2025 lists; more is a
/// loop in the data.
const EARLIER_MERGE_DEPTH: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LandUseGroup {
    Agricultural,
    NonAgricultural,
    Unused,
}

/// One land-use code of one official list, with the period the list was in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandUseInfo {
    pub code: LandUseCode,
    /// `legacy` (2014–2024 circulars) or `2024` (Circular 08/2024/TT-BTNMT).
    pub list: String,
    pub name: String,
    pub group: LandUseGroup,
    pub valid_from: NaiveDate,
    pub valid_to: Option<NaiveDate>,
}

#[derive(Debug, Deserialize)]
struct ZoneRow {
    old_province_code: ProvinceCode,
    central_meridian: f64,
    epsg: u32,
}

#[derive(Debug, Deserialize)]
struct MappingRow {
    legacy_code: LandUseCode,
    current_code: LandUseCode,
}

/// What a commune code as received resolves to among the 2025 communes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommuneResolution {
    /// A 2025 commune code.
    Current(CommuneCode),
    /// An old commune wholly merged into one 2025 commune.
    MergedInto(CommuneCode),
    /// An old commune split among several 2025 communes: the parcel's location decides.
    SplitAmong(Vec<CommuneCode>),
    /// In no list we have (e.g. codes from before the 2024 merger in Đà Nẵng).
    Unknown,
}

/// The file names of the reference set, as they appear in `reference/` and in an operator's
/// override directory.
pub const FILES: [&str; 9] = [
    "provinces.csv",
    "communes.csv",
    "commune-merges.csv",
    "commune-earlier-merges.csv",
    "old-provinces.csv",
    "old-commune-enclaves.csv",
    "vn2000-zones.csv",
    "land-use-codes.csv",
    "land-use-mapping.csv",
];

fn embedded(file: &str) -> &'static str {
    match file {
        "provinces.csv" => include_str!("../reference/provinces.csv"),
        "communes.csv" => include_str!("../reference/communes.csv"),
        "commune-merges.csv" => include_str!("../reference/commune-merges.csv"),
        "commune-earlier-merges.csv" => include_str!("../reference/commune-earlier-merges.csv"),
        "old-provinces.csv" => include_str!("../reference/old-provinces.csv"),
        "old-commune-enclaves.csv" => include_str!("../reference/old-commune-enclaves.csv"),
        "vn2000-zones.csv" => include_str!("../reference/vn2000-zones.csv"),
        "land-use-codes.csv" => include_str!("../reference/land-use-codes.csv"),
        "land-use-mapping.csv" => include_str!("../reference/land-use-mapping.csv"),
        _ => "",
    }
}

fn parse_csv<T: for<'de> Deserialize<'de>>(file: &str, text: &str) -> Result<Vec<T>, ReferenceError> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    reader
        .deserialize()
        .map(|row| {
            row.map_err(|e| ReferenceError::Parse {
                file: file.to_owned(),
                line: e.position().map_or(0, csv::Position::line),
                message: e.to_string(),
            })
        })
        .collect()
}

/// All reference data, indexed for the lookups the importer and the API make.
#[derive(Debug, Clone)]
pub struct ReferenceData {
    provinces: HashMap<ProvinceCode, Province>,
    communes: HashMap<CommuneCode, Commune>,
    /// Old commune code → the merges it took part in.
    merges_by_old: HashMap<CommuneCode, Vec<CommuneMerge>>,
    /// Old commune code → the unit it was merged into before the 2025 merger.
    earlier: HashMap<CommuneCode, CommuneCode>,
    /// Sorted by first commune code.
    old_provinces: Vec<OldProvince>,
    enclaves: Vec<CommuneEnclave>,
    zones: HashMap<ProvinceCode, Vn2000Zone>,
    land_use: HashMap<(LandUseCode, String), LandUseInfo>,
    land_use_mapping: HashMap<LandUseCode, LandUseCode>,
}

impl ReferenceData {
    /// The reference data compiled into this build.
    pub fn embedded() -> Result<Self, ReferenceError> {
        Self::from_texts(|file| Ok(embedded(file).to_owned()))
    }

    /// The compiled-in data, with every file present in `dir` replacing its compiled-in twin.
    pub fn with_overrides(dir: &Path) -> Result<Self, ReferenceError> {
        Self::from_texts(|file| {
            let path = dir.join(file);
            if path.exists() {
                std::fs::read_to_string(&path).map_err(|source| ReferenceError::Read { path, source })
            } else {
                Ok(embedded(file).to_owned())
            }
        })
    }

    fn from_texts(read: impl Fn(&str) -> Result<String, ReferenceError>) -> Result<Self, ReferenceError> {
        let provinces: Vec<Province> = parse_csv("provinces.csv", &read("provinces.csv")?)?;
        let communes: Vec<Commune> = parse_csv("communes.csv", &read("communes.csv")?)?;
        let merges: Vec<CommuneMerge> = parse_csv("commune-merges.csv", &read("commune-merges.csv")?)?;
        let earlier: Vec<EarlierMerge> = parse_csv("commune-earlier-merges.csv", &read("commune-earlier-merges.csv")?)?;
        let mut old_provinces: Vec<OldProvince> = parse_csv("old-provinces.csv", &read("old-provinces.csv")?)?;
        let enclaves: Vec<CommuneEnclave> = parse_csv("old-commune-enclaves.csv", &read("old-commune-enclaves.csv")?)?;
        let zones: Vec<ZoneRow> = parse_csv("vn2000-zones.csv", &read("vn2000-zones.csv")?)?;
        let land_use: Vec<LandUseInfo> = parse_csv("land-use-codes.csv", &read("land-use-codes.csv")?)?;
        let mapping: Vec<MappingRow> = parse_csv("land-use-mapping.csv", &read("land-use-mapping.csv")?)?;

        old_provinces.sort_by(|a, b| a.first_commune_code.cmp(&b.first_commune_code));
        for pair in old_provinces.windows(2) {
            if pair[0].last_commune_code >= pair[1].first_commune_code {
                return Err(ReferenceError::Inconsistent {
                    file: "old-provinces.csv".into(),
                    message: format!("commune ranges of provinces {} and {} overlap", pair[0].code, pair[1].code),
                });
            }
        }
        let mut merges_by_old: HashMap<CommuneCode, Vec<CommuneMerge>> = HashMap::new();
        for merge in merges {
            merges_by_old.entry(merge.old_code.clone()).or_default().push(merge);
        }
        let data = Self {
            provinces: provinces.into_iter().map(|p| (p.code.clone(), p)).collect(),
            communes: communes.into_iter().map(|c| (c.code.clone(), c)).collect(),
            merges_by_old,
            earlier: earlier.into_iter().map(|e| (e.old_code, e.code)).collect(),
            old_provinces,
            enclaves,
            zones: zones
                .into_iter()
                .map(|z| (z.old_province_code, Vn2000Zone { central_meridian: z.central_meridian, epsg: z.epsg }))
                .collect(),
            land_use: land_use.into_iter().map(|l| ((l.code.clone(), l.list.clone()), l)).collect(),
            land_use_mapping: mapping.into_iter().map(|m| (m.legacy_code, m.current_code)).collect(),
        };
        // An earlier merger that leads nowhere would silently leave its parcels out of every
        // area: refuse the data instead.
        for (old, successor) in &data.earlier {
            if data.resolve_commune(old) == CommuneResolution::Unknown {
                return Err(ReferenceError::Inconsistent {
                    file: "commune-earlier-merges.csv".into(),
                    message: format!(
                        "{old} is merged into {successor}, which reaches no 2025 commune (in no list, or a loop)"
                    ),
                });
            }
        }
        Ok(data)
    }

    pub fn province(&self, code: &ProvinceCode) -> Option<&Province> {
        self.provinces.get(code)
    }

    pub fn provinces(&self) -> impl Iterator<Item = &Province> {
        self.provinces.values()
    }

    pub fn commune(&self, code: &CommuneCode) -> Option<&Commune> {
        self.communes.get(code)
    }

    pub fn communes(&self) -> impl Iterator<Item = &Commune> {
        self.communes.values()
    }

    /// Maps a commune code as received to the 2025 communes. A 2025 code wins over an old code that
    /// happens to be the same number, since new units re-use a constituent's old code.
    /// An old code that an earlier merger retired is followed to the unit it went into.
    pub fn resolve_commune(&self, code: &CommuneCode) -> CommuneResolution {
        self.resolve_within(code, EARLIER_MERGE_DEPTH)
    }

    fn resolve_within(&self, code: &CommuneCode, depth: usize) -> CommuneResolution {
        if self.communes.contains_key(code) {
            return CommuneResolution::Current(code.clone());
        }
        match self.merges_by_old.get(code).map(Vec::as_slice) {
            None | Some([]) => match self.earlier.get(code) {
                Some(successor) if depth > 0 => match self.resolve_within(successor, depth - 1) {
                    CommuneResolution::Current(c) => CommuneResolution::MergedInto(c),
                    other => other,
                },
                _ => CommuneResolution::Unknown,
            },
            Some([only]) => CommuneResolution::MergedInto(only.code.clone()),
            Some(several) => {
                if let Some(full) = several.iter().find(|m| m.merge_type == MergeType::Full) {
                    CommuneResolution::MergedInto(full.code.clone())
                } else {
                    CommuneResolution::SplitAmong(several.iter().map(|m| m.code.clone()).collect())
                }
            }
        }
    }

    /// The old commune codes merged (wholly or partly) into a 2025 commune, in code order.
    /// Codes retired by earlier mergers into any of those are included.
    pub fn old_codes_merged_into(&self, code: &CommuneCode) -> Vec<CommuneCode> {
        let mut codes: Vec<CommuneCode> =
            self.merges_by_old.values().flatten().filter(|m| m.code == *code).map(|m| m.old_code.clone()).collect();
        // Successors are earlier codes or the commune itself: grow the set until no earlier
        // merger leads into it (bounded, the data was checked for loops at load).
        for _ in 0..EARLIER_MERGE_DEPTH {
            let before = codes.len();
            let found: Vec<CommuneCode> = self
                .earlier
                .iter()
                .filter(|&(old, successor)| {
                    (successor == code || codes.contains(successor)) && !codes.contains(old) && old != code
                })
                .map(|(old, _)| old.clone())
                .collect();
            codes.extend(found);
            if codes.len() == before {
                break;
            }
        }
        codes.sort();
        codes.dedup();
        codes
    }

    /// The pre-2025 province with this code (`48`, Đà Nẵng): what the first digits of a
    /// citizen ID name.
    pub fn old_province(&self, code: &str) -> Option<&OldProvince> {
        self.old_provinces.iter().find(|p| p.code.as_str() == code)
    }

    /// The pre-2025 province whose commune numbering contains `code` (old or new code alike):
    /// an enclave if one lists it, else the province whose range holds it.
    pub fn old_province_of(&self, code: &CommuneCode) -> Option<&OldProvince> {
        if let Some(enclave) =
            self.enclaves.iter().find(|e| e.first_commune_code <= *code && *code <= e.last_commune_code)
        {
            return self.old_provinces.iter().find(|p| p.code == enclave.old_province_code);
        }
        let idx = self.old_provinces.partition_point(|p| p.first_commune_code <= *code);
        let candidate = self.old_provinces.get(idx.checked_sub(1)?)?;
        (*code <= candidate.last_commune_code).then_some(candidate)
    }

    /// The 2025 province of a commune, from the commune list or, for an old code, from the old
    /// province that owned its number.
    pub fn province_of(&self, code: &CommuneCode) -> Option<ProvinceCode> {
        if let Some(c) = self.communes.get(code) {
            return Some(c.province_code.clone());
        }
        self.old_province_of(code).map(|p| p.new_province_code.clone())
    }

    /// The TM-3 zone a parcel in this commune was surveyed in: the zone of the old province.
    pub fn zone_of_commune(&self, code: &CommuneCode) -> Option<Vn2000Zone> {
        self.old_province_of(code).and_then(|p| self.zones.get(&p.code)).copied()
    }

    /// The zone with this central meridian, if any province uses it (for reading a `.prj` that names
    /// no EPSG code).
    pub fn zone_by_central_meridian(&self, central_meridian: f64) -> Option<Vn2000Zone> {
        self.zones().into_iter().find(|z| (z.central_meridian - central_meridian).abs() < 1e-6)
    }

    /// Every distinct zone, sorted by central meridian.
    pub fn zones(&self) -> Vec<Vn2000Zone> {
        let mut zones: Vec<Vn2000Zone> = self.zones.values().copied().collect();
        zones.sort_by(|a, b| a.central_meridian.total_cmp(&b.central_meridian));
        zones.dedup_by(|a, b| a.epsg == b.epsg);
        zones
    }

    /// A land-use code in a given list (`legacy` or `2024`).
    pub fn land_use(&self, code: &LandUseCode, list: &str) -> Option<&LandUseInfo> {
        self.land_use.get(&(code.clone(), list.to_owned()))
    }

    /// The current (2024) code for a code as received: itself if it is on the 2024 list, its mapping
    /// if it is a legacy code, `None` if it is on neither list.
    pub fn current_land_use(&self, code: &LandUseCode) -> Option<LandUseCode> {
        if self.land_use(code, "2024").is_some() {
            return Some(code.clone());
        }
        self.land_use_mapping.get(code).cloned()
    }

    pub fn land_use_codes(&self) -> impl Iterator<Item = &LandUseInfo> {
        self.land_use.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> ReferenceData {
        ReferenceData::embedded().expect("embedded reference data parses")
    }

    fn commune(code: &str) -> CommuneCode {
        CommuneCode::parse(code).expect("valid code")
    }

    #[test]
    fn embedded_data_has_the_2025_units() {
        let r = reference();
        assert_eq!(r.provinces().count(), 34);
        assert_eq!(r.communes().count(), 3321);
        assert_eq!(r.old_provinces.len(), 63);
        assert_eq!(r.zones.len(), 63, "every old province has a zone");
    }

    #[test]
    fn da_nang_wards_are_in_the_107_45_zone() {
        let r = reference();
        // 20203 is a Đà Nẵng ward code from before the 2024 merger: in no list, but in Đà Nẵng's range.
        let zone = r.zone_of_commune(&commune("20203")).expect("Đà Nẵng has a zone");
        assert_eq!(zone.epsg, 5899);
        assert!((zone.central_meridian - 107.75).abs() < 1e-9);
        assert_eq!(r.province_of(&commune("20203")).map(String::from), Some("48".to_owned()));
    }

    #[test]
    fn ha_noi_is_at_105_and_old_codes_resolve() {
        let r = reference();
        assert_eq!(r.zone_of_commune(&commune("00004")).map(|z| z.epsg), Some(5897));
        // Phường Quán Thánh (00013) was wholly merged into Phường Ba Đình (00004).
        assert_eq!(r.resolve_commune(&commune("00013")), CommuneResolution::MergedInto(commune("00004")));
        assert_eq!(r.resolve_commune(&commune("00004")), CommuneResolution::Current(commune("00004")));
        assert_eq!(r.resolve_commune(&commune("99999")), CommuneResolution::Unknown);
    }

    #[test]
    fn codes_retired_in_2024_reach_their_2025_commune() {
        let r = reference();
        // Phường An Hải Đông went into An Hải Nam (20278) in 2024, which is in An Hải (20275) since 2025.
        assert_eq!(r.resolve_commune(&commune("20281")), CommuneResolution::MergedInto(commune("20275")));
        assert_eq!(r.resolve_commune(&commune("20203")), CommuneResolution::MergedInto(commune("20209")));
        assert!(r.old_codes_merged_into(&commune("20275")).contains(&commune("20281")));
        assert!(r.old_codes_merged_into(&commune("20209")).contains(&commune("20203")));
        assert!(!r.old_codes_merged_into(&commune("20209")).contains(&commune("20281")));
    }

    #[test]
    fn an_earlier_merger_that_leads_nowhere_is_refused() {
        let dir = std::env::temp_dir().join(format!("landdb-ref-earlier-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(
            dir.join("commune-earlier-merges.csv"),
            "old_code,code,old_name,effective,act\n20203,99998,X,2025-01-01,t\n",
        )
        .expect("write");
        let err = ReferenceData::with_overrides(&dir).expect_err("refused");
        assert!(err.to_string().contains("commune-earlier-merges.csv") && err.to_string().contains("20203"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn ha_noi_communes_numbered_in_other_blocks_are_in_ha_noi() {
        let r = reference();
        // Ex-Hà Tây (09538…), Mê Linh (in Vĩnh Phúc's block), Lương Sơn (in Hòa Bình's block).
        for code in ["09574", "08980", "04930"] {
            assert_eq!(r.old_province_of(&commune(code)).map(|p| p.code.as_str()), Some("01"), "{code}");
            assert_eq!(r.zone_of_commune(&commune(code)).map(|z| z.epsg), Some(5897), "{code}");
        }
        // Hòa Bình itself keeps its zone (106°00′).
        assert_eq!(r.zone_of_commune(&commune("05100")).map(|z| z.epsg), Some(9211));
    }

    #[test]
    fn every_2025_commune_has_a_province_and_a_zone() {
        let r = reference();
        for c in r.communes() {
            assert!(r.province(&c.province_code).is_some(), "{} has unknown province {}", c.code, c.province_code);
            let old = r.old_province_of(&c.code).unwrap_or_else(|| panic!("{} is in no old province", c.code));
            assert_eq!(old.new_province_code, c.province_code, "{} {}", c.code, c.name);
            assert!(r.zone_of_commune(&c.code).is_some(), "{} has no zone", c.code);
        }
    }

    #[test]
    fn legacy_land_use_maps_to_the_2024_list() {
        let r = reference();
        let code = |s: &str| LandUseCode::parse(s).expect("valid");
        assert_eq!(r.current_land_use(&code("BHK")), Some(code("HNK")));
        assert_eq!(r.current_land_use(&code("ODT")), Some(code("ODT")));
        assert_eq!(r.current_land_use(&code("XYZ")), None);
        assert!(r.land_use(&code("ODT"), "legacy").is_some());
    }

    #[test]
    fn every_zone_has_a_known_epsg_code() {
        for zone in reference().zones() {
            assert!(
                [5896, 5897, 5898, 5899].contains(&zone.epsg) || (9205..=9218).contains(&zone.epsg),
                "unexpected EPSG {} for CM {}",
                zone.epsg,
                zone.central_meridian
            );
        }
    }

    #[test]
    fn an_override_directory_replaces_one_file() {
        let dir = std::env::temp_dir().join(format!("landdb-ref-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("provinces.csv"), "code,name\n48,Thành phố Đà Nẵng\n").expect("write");
        let r = ReferenceData::with_overrides(&dir).expect("loads");
        assert_eq!(r.provinces().count(), 1);
        assert_eq!(r.communes().count(), 3321, "other files stay embedded");
        std::fs::write(dir.join("provinces.csv"), "code,name\nXX,Bad\n").expect("write");
        let err = ReferenceData::with_overrides(&dir).expect_err("bad code is refused");
        assert!(err.to_string().contains("provinces.csv"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
