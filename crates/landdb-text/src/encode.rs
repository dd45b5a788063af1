//! Unicode text to the bytes of a legacy encoding, as the old software wrote them (test data).

use unicode_normalization::UnicodeNormalization;

use crate::tables;
use crate::{EncodeError, Encoding};

/// Encodes text the way software of the time wrote it: TCVN3 one byte per letter (glibc's
/// TCVN5712-1, which also has the upper-case toned letters), VNI base letter + diacritic byte, CP1258
/// the precomposed byte where Windows-1258 has one and otherwise base + combining tone byte (as glibc
/// iconv does: "à" = E0, "ả" = 'a' D2, "ấ" = E2 EC). UTF-8 is the text itself.
///
/// The text is NFC-composed first, so `decode(&encode(s, e)?, e)` is `s` in NFC for every text made of
/// ASCII and Vietnamese letters.
///
/// # Errors
/// [`EncodeError`] naming the first character the encoding cannot hold (e.g. "€" in TCVN3, "ñ" in VNI,
/// where that byte means "đ").
///
/// ```
/// use landdb_text::{Encoding, encode};
///
/// assert_eq!(encode("Đất ở", Encoding::Vni).expect("Vietnamese"), b"\xD1a\xE1t \xF4\xFB");
/// assert!(encode("€", Encoding::Tcvn3).is_err());
/// ```
pub fn encode(text: &str, encoding: Encoding) -> Result<Vec<u8>, EncodeError> {
    let text: String = text.nfc().collect();
    let Some(table) = tables::table(encoding) else {
        return Ok(text.into_bytes());
    };
    let mut out = Vec::with_capacity(text.len() * 2);
    for character in text.chars() {
        let bytes = table.encode_char(character).ok_or(EncodeError { character, encoding })?;
        out.extend_from_slice(bytes);
    }
    Ok(out)
}
