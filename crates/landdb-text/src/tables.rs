//! The byte tables of the legacy encodings, read once from the data files in `tables/` (see their
//! headers for where each came from) into lookups for decoding and encoding.

use std::collections::HashMap;
use std::sync::LazyLock;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::Encoding;

/// What decoding makes of a byte that only means something after a base letter (a VNI diacritic byte)
/// when it stands after anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrayMarks {
    /// Its Windows-1252 character, as a VNI font would show it: what users of `decode` want.
    AsText,
    /// U+FFFD, so that detection counts the word as not Vietnamese: real VNI text never has one.
    AsInvalid,
}

/// One legacy encoding: bytes to characters and back.
#[derive(Debug)]
pub(crate) struct ByteTable {
    single: [Option<char>; 256],
    /// Two-byte letters (VNI), matched before single bytes.
    pairs: HashMap<[u8; 2], char>,
    /// Bytes that are the second byte of some pair.
    pair_second: [bool; 256],
    encoded: HashMap<char, Vec<u8>>,
}

static TCVN3: LazyLock<ByteTable> =
    LazyLock::new(|| ByteTable::single_bytes("tcvn3.tsv", include_str!("../tables/tcvn3.tsv")));
static CP1258: LazyLock<ByteTable> =
    LazyLock::new(|| ByteTable::single_bytes("cp1258.tsv", include_str!("../tables/cp1258.tsv")));
static VNI: LazyLock<ByteTable> = LazyLock::new(ByteTable::vni);

/// The table of a legacy encoding; `None` for UTF-8, which needs none.
pub(crate) fn table(encoding: Encoding) -> Option<&'static ByteTable> {
    match encoding {
        Encoding::Utf8 => None,
        Encoding::Tcvn3 => Some(&TCVN3),
        Encoding::Vni => Some(&VNI),
        Encoding::Cp1258 => Some(&CP1258),
    }
}

impl ByteTable {
    fn empty() -> Self {
        ByteTable { single: [None; 256], pairs: HashMap::new(), pair_second: [false; 256], encoded: HashMap::new() }
    }

    /// A one-byte-per-character table whose combining-mark bytes also encode base + mark compositions
    /// (CP1258 "ả" = 'a' 0xD2, as glibc iconv writes it).
    fn single_bytes(file: &str, text: &str) -> Self {
        let mut table = ByteTable::empty();
        for entry in parse(file, text) {
            let [byte] = entry.bytes[..] else {
                panic!("{file} line {}: expected one byte", entry.line);
            };
            table.add_single(byte, entry.character, file, entry.line);
        }
        table.add_compositions();
        table
    }

    /// VNI-Windows: the Vietnamese letters of `vni.tsv` over Windows-1252.
    fn vni() -> Self {
        let mut table = ByteTable::empty();
        for entry in parse("vni.tsv", include_str!("../tables/vni.tsv")) {
            match entry.bytes[..] {
                [byte] => table.add_single(byte, entry.character, "vni.tsv", entry.line),
                [base, mark] => table.add_pair([base, mark], entry.character, "vni.tsv", entry.line),
                _ => panic!("vni.tsv line {}: expected one or two bytes", entry.line),
            }
        }
        // A diacritic byte of the other case still marks the letter before it ("Aø" reads as "À"):
        // decoding accepts it, encoding never writes it.
        let written: Vec<([u8; 2], char)> = table.pairs.iter().map(|(bytes, c)| (*bytes, *c)).collect();
        for ([base, mark], character) in written {
            if let Some(other) = other_case_byte(mark) {
                table.pairs.entry([base, other]).or_insert(character);
                table.pair_second[usize::from(other)] = true;
            }
        }
        // Every other byte keeps its Windows-1252 meaning. A diacritic byte decodes to its Windows-1252
        // character when it stands alone, but that character cannot be written: after a vowel it would
        // read back as a Vietnamese letter.
        for entry in parse("windows1252.tsv", include_str!("../tables/windows1252.tsv")) {
            let [byte] = entry.bytes[..] else {
                panic!("windows1252.tsv line {}: expected one byte", entry.line);
            };
            let slot = usize::from(byte);
            if table.single[slot].is_some() {
                continue;
            }
            table.single[slot] = Some(entry.character);
            if !table.pair_second[slot] {
                table.encoded.entry(entry.character).or_insert_with(|| vec![byte]);
            }
        }
        table
    }

    fn add_single(&mut self, byte: u8, character: char, file: &str, line: usize) {
        let slot = &mut self.single[usize::from(byte)];
        assert!(slot.is_none(), "{file} line {line}: byte {byte:02X} listed twice");
        *slot = Some(character);
        self.add_encoded(character, vec![byte], file, line);
    }

    fn add_pair(&mut self, bytes: [u8; 2], character: char, file: &str, line: usize) {
        assert!(self.pairs.insert(bytes, character).is_none(), "{file} line {line}: bytes listed twice");
        self.pair_second[usize::from(bytes[1])] = true;
        self.add_encoded(character, bytes.to_vec(), file, line);
    }

    fn add_encoded(&mut self, character: char, bytes: Vec<u8>, file: &str, line: usize) {
        let previous = self.encoded.insert(character, bytes);
        assert!(previous.is_none(), "{file} line {line}: {character:?} listed twice; the table must be one-to-one");
    }

    fn add_compositions(&mut self) {
        let chars: Vec<(u8, char)> =
            (0..=u8::MAX).filter_map(|b| self.single[usize::from(b)].map(|c| (b, c))).collect();
        let marks: Vec<(u8, char)> = chars.iter().copied().filter(|(_, c)| is_combining_mark(*c)).collect();
        for &(base_byte, base) in &chars {
            for &(mark_byte, mark) in &marks {
                // Full NFC, not just primary composition: "Ê" + dot below is "Ệ" only after reordering.
                let mut composed = [base, mark].into_iter().nfc();
                if let (Some(letter), None) = (composed.next(), composed.next()) {
                    self.encoded.entry(letter).or_insert_with(|| vec![base_byte, mark_byte]);
                }
            }
        }
    }

    /// Bytes to characters, longest match first; not yet NFC. Undefined bytes become U+FFFD.
    pub(crate) fn decode_raw(&self, bytes: &[u8], stray_marks: StrayMarks) -> String {
        let mut out = String::with_capacity(bytes.len() + bytes.len() / 2);
        let mut rest = bytes;
        while let Some((&byte, after)) = rest.split_first() {
            if let Some(&next) = after.first()
                && let Some(&character) = self.pairs.get(&[byte, next])
            {
                out.push(character);
                rest = &after[1..];
                continue;
            }
            let slot = usize::from(byte);
            let character = if stray_marks == StrayMarks::AsInvalid && self.pair_second[slot] {
                char::REPLACEMENT_CHARACTER
            } else {
                self.single[slot].unwrap_or(char::REPLACEMENT_CHARACTER)
            };
            out.push(character);
            rest = after;
        }
        out
    }

    /// The bytes of one (NFC) character, if the encoding can hold it.
    pub(crate) fn encode_char(&self, character: char) -> Option<&[u8]> {
        self.encoded.get(&character).map(Vec::as_slice)
    }
}

/// The Windows-1252 byte of the same letter in the other case (0xC0-0xDE <-> 0xE0-0xFE, but × and ÷).
fn other_case_byte(byte: u8) -> Option<u8> {
    match byte {
        0xD7 | 0xF7 => None,
        0xC0..=0xDE => Some(byte + 0x20),
        0xE0..=0xFE => Some(byte - 0x20),
        _ => None,
    }
}

struct Entry {
    bytes: Vec<u8>,
    character: char,
    line: usize,
}

/// Reads `bytes<TAB>U+XXXX[<TAB>character]` lines; `#` starts a comment line. The tables are compiled
/// in, so a malformed line is a bug in this crate and panics (the tests load every table).
fn parse(file: &str, text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut columns = line.split('\t');
        let bytes_column = columns.next().unwrap_or_default();
        let bytes: Vec<u8> = bytes_column
            .split(' ')
            .map(|hex| {
                u8::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("{file} line {line_no}: bad byte {hex:?}"))
            })
            .collect();
        let code_point =
            columns.next().and_then(|c| c.strip_prefix("U+")).and_then(|hex| u32::from_str_radix(hex, 16).ok());
        let character = code_point
            .and_then(char::from_u32)
            .unwrap_or_else(|| panic!("{file} line {line_no}: expected a U+XXXX code point in column 2"));
        if let Some(shown) = columns.next().filter(|s| !s.is_empty()) {
            assert!(
                shown.chars().eq([character]),
                "{file} line {line_no}: column 3 {shown:?} is not U+{:04X}",
                u32::from(character)
            );
        }
        entries.push(Entry { bytes, character, line: line_no });
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_loads_one_to_one() {
        for encoding in [Encoding::Tcvn3, Encoding::Vni, Encoding::Cp1258] {
            let table = table(encoding).expect("legacy encodings have a table");
            for (character, bytes) in &table.encoded {
                let decoded = table.decode_raw(bytes, StrayMarks::AsText);
                let composed: String = unicode_normalization::UnicodeNormalization::nfc(decoded.as_str()).collect();
                assert_eq!(composed, character.to_string(), "{encoding} {bytes:02X?}");
            }
        }
    }

    #[test]
    fn tcvn3_table_covers_every_byte_iconv_defines() {
        let defined = TCVN3.single.iter().filter(|c| c.is_some()).count();
        assert_eq!(defined, 256, "glibc TCVN5712-1 defines all 256 bytes");
    }

    #[test]
    fn vni_stray_diacritic_is_text_for_decode_and_invalid_for_detection() {
        // 'ø' after a consonant: no letter to mark.
        assert_eq!(VNI.decode_raw(b"n\xF8", StrayMarks::AsText), "nø");
        assert_eq!(VNI.decode_raw(b"n\xF8", StrayMarks::AsInvalid), "n\u{FFFD}");
        assert_eq!(VNI.encode_char('ø'), None);
    }

    #[test]
    fn vni_accepts_a_diacritic_byte_of_the_other_case() {
        assert_eq!(VNI.decode_raw(b"A\xF8", StrayMarks::AsText), "À");
        assert_eq!(VNI.decode_raw(b"a\xD8", StrayMarks::AsText), "à");
    }
}
