//! Bytes in a known encoding to NFC Unicode text.

use unicode_normalization::{UnicodeNormalization, is_nfc};

use crate::Encoding;
use crate::tables::{self, StrayMarks};

/// Decodes the bytes of a string attribute into NFC Unicode: Vietnamese letters come out precomposed
/// whether the encoding wrote them as one byte (TCVN3), base + diacritic byte (VNI) or base + combining
/// tone mark (CP1258). Never fails: invalid UTF-8 and bytes the encoding leaves undefined become U+FFFD.
///
/// ```
/// use landdb_text::{Encoding, decode};
///
/// assert_eq!(decode(b"Kh\xAD\xACng", Encoding::Tcvn3), "Khương");
/// assert_eq!(decode(b"Kh\xF6\xF4ng", Encoding::Vni), "Khương");
/// assert_eq!(decode(b"Nguy\xEA\xDEn", Encoding::Cp1258), "Nguyễn");
/// ```
#[must_use]
pub fn decode(bytes: &[u8], encoding: Encoding) -> String {
    decode_with(bytes, encoding, StrayMarks::AsText)
}

/// [`decode`], choosing what a stray VNI diacritic byte becomes (detection wants U+FFFD).
pub(crate) fn decode_with(bytes: &[u8], encoding: Encoding, stray_marks: StrayMarks) -> String {
    let text = match tables::table(encoding) {
        None => String::from_utf8_lossy(bytes).into_owned(),
        Some(table) => table.decode_raw(bytes, stray_marks),
    };
    if is_nfc(&text) { text } else { text.nfc().collect() }
}
