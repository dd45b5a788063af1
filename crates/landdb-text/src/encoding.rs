//! The text encodings landdb reads, with their names and the spellings `.cpg` files use for them.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use crate::UnknownEncoding;

/// A text encoding of DBF string attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Unicode, UTF-8.
    Utf8,
    /// TCVN 5712:1993 ("TCVN3", the ABC fonts): one byte per letter.
    Tcvn3,
    /// VNI-Windows: a Windows-1252 base letter followed by a diacritic byte.
    Vni,
    /// Windows-1258: precomposed ă â ê ô ơ ư đ followed by combining tone-mark bytes.
    Cp1258,
}

impl Encoding {
    /// Every supported encoding.
    pub const ALL: [Encoding; 4] = [Encoding::Utf8, Encoding::Tcvn3, Encoding::Vni, Encoding::Cp1258];

    /// The canonical name: `"UTF-8"`, `"TCVN3"`, `"VNI"` or `"CP1258"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Tcvn3 => "TCVN3",
            Encoding::Vni => "VNI",
            Encoding::Cp1258 => "CP1258",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Spellings, keyed by their [`spelling_key`]; from `tables/encoding_names.tsv`.
static SPELLINGS: LazyLock<HashMap<String, Encoding>> = LazyLock::new(|| {
    let mut spellings = HashMap::new();
    for (line_no, line) in include_str!("../tables/encoding_names.tsv").lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (spelling, name) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("encoding_names.tsv line {}: expected spelling<TAB>encoding", line_no + 1));
        let encoding = Encoding::ALL
            .into_iter()
            .find(|e| e.name() == name)
            .unwrap_or_else(|| panic!("encoding_names.tsv line {}: unknown encoding {name:?}", line_no + 1));
        spellings.insert(spelling_key(spelling), encoding);
    }
    spellings
});

/// Upper case without the separators people put in names at random ("windows-1258" = "WINDOWS1258").
fn spelling_key(spelling: &str) -> String {
    spelling
        .trim_start_matches('\u{FEFF}')
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '_' | '.' | ':'))
        .flat_map(char::to_uppercase)
        .collect()
}

impl FromStr for Encoding {
    type Err = UnknownEncoding;

    /// Reads an encoding name as found in a `.cpg` file: `"UTF-8"`, `"65001"`, `"1258"`, `"windows-1258"`,
    /// `"TCVN5712-1"`, `"ABC"`, `"VNI-WIN"`... (case-insensitive, surrounding whitespace ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SPELLINGS.get(&spelling_key(s)).copied().ok_or_else(|| UnknownEncoding(s.trim().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpg_spellings_name_their_encoding() {
        let cases = [
            ("UTF-8", Encoding::Utf8),
            ("utf8", Encoding::Utf8),
            ("65001", Encoding::Utf8),
            ("\u{FEFF}UTF-8\r\n", Encoding::Utf8),
            ("1258", Encoding::Cp1258),
            ("CP1258", Encoding::Cp1258),
            ("windows-1258", Encoding::Cp1258),
            ("ANSI 1258", Encoding::Cp1258),
            ("TCVN3", Encoding::Tcvn3),
            ("tcvn5712-1", Encoding::Tcvn3),
            ("TCVN5712-1:1993", Encoding::Tcvn3),
            ("ABC", Encoding::Tcvn3),
            ("VNI", Encoding::Vni),
            ("vni-win", Encoding::Vni),
            ("VNI-Windows", Encoding::Vni),
        ];
        for (spelling, expected) in cases {
            assert_eq!(spelling.parse::<Encoding>(), Ok(expected), "{spelling:?}");
        }
    }

    #[test]
    fn every_canonical_name_parses_back() {
        for encoding in Encoding::ALL {
            assert_eq!(encoding.name().parse::<Encoding>(), Ok(encoding));
            assert_eq!(encoding.to_string(), encoding.name());
        }
    }

    #[test]
    fn unknown_names_are_refused_with_the_name() {
        let err = " 1252 ".parse::<Encoding>().expect_err("Windows-1252 is not a Vietnamese encoding");
        assert_eq!(err, UnknownEncoding("1252".to_owned()));
        assert!(err.to_string().contains("\"1252\""));
        assert!("".parse::<Encoding>().is_err());
    }
}
