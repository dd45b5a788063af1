//! Whether a word reads as one Vietnamese syllable: the yardstick detection holds decoded text to.

use std::collections::HashSet;
use std::sync::LazyLock;

use unicode_normalization::UnicodeNormalization;

/// The onsets, nuclei and codas of `tables/syllables.txt`, without tones, lower case.
#[derive(Debug)]
struct SyllableParts {
    onsets: HashSet<String>,
    nuclei: HashSet<String>,
    codas: HashSet<String>,
}

static PARTS: LazyLock<SyllableParts> = LazyLock::new(|| {
    let mut parts = SyllableParts { onsets: HashSet::new(), nuclei: HashSet::new(), codas: HashSet::new() };
    for (index, line) in include_str!("../tables/syllables.txt").lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (kind, list) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("syllables.txt line {}: expected kind<TAB>parts", index + 1));
        let set = match kind {
            "onset" => &mut parts.onsets,
            "nucleus" => &mut parts.nuclei,
            "coda" => &mut parts.codas,
            _ => panic!("syllables.txt line {}: unknown kind {kind:?}", index + 1),
        };
        set.extend(list.split(' ').map(|part| part.nfc().collect::<String>()));
    }
    parts
});

const TONE_MARKS: [char; 5] = ['\u{300}', '\u{301}', '\u{303}', '\u{309}', '\u{323}'];

fn is_vowel(letter: char) -> bool {
    matches!(letter, 'a' | 'ă' | 'â' | 'e' | 'ê' | 'i' | 'o' | 'ô' | 'ơ' | 'u' | 'ư' | 'y')
}

fn is_letter(letter: char) -> bool {
    letter.is_ascii_lowercase() || is_vowel(letter) || letter == 'đ'
}

/// True when `word` (NFC, no spaces, digits or ASCII punctuation) is written like a Vietnamese syllable:
/// lower, upper or title case; only Vietnamese letters; onset + nucleus + coda from the known parts; at
/// most one tone mark, on a vowel.
pub(crate) fn is_vietnamese_syllable(word: &str) -> bool {
    if !has_word_case(word) {
        return false;
    }
    let mut letters = Vec::with_capacity(word.len());
    let mut tones = 0;
    for character in word.chars().flat_map(char::to_lowercase) {
        // Split off the tone; what is left must compose back to one letter ("ấ" = "â" + acute).
        let (marks, base): (String, String) = character.nfd().partition(|part| TONE_MARKS.contains(part));
        let mut composed = base.nfc();
        let (Some(letter), None) = (composed.next(), composed.next()) else {
            return false;
        };
        if !is_letter(letter) || (!marks.is_empty() && !is_vowel(letter)) {
            return false;
        }
        tones += marks.chars().count();
        letters.push(letter);
    }
    if tones > 1 {
        return false;
    }
    let onset_len = letters.iter().take_while(|l| !is_vowel(**l)).count();
    let nucleus_len = letters[onset_len..].iter().take_while(|l| is_vowel(**l)).count();
    let onset: String = letters[..onset_len].iter().collect();
    let nucleus: String = letters[onset_len..onset_len + nucleus_len].iter().collect();
    let coda: String = letters[onset_len + nucleus_len..].iter().collect();
    if nucleus.is_empty() || coda.chars().any(is_vowel) {
        return false;
    }
    let parts = &*PARTS;
    let onset_ok = onset.is_empty() || parts.onsets.contains(&onset);
    let coda_ok = coda.is_empty() || parts.codas.contains(&coda);
    // gi- and qu-: the i/u belongs to the onset when a nucleus follows it ("giữa", "quả").
    let glide_onset = (onset == "g" && nucleus.starts_with('i')) || (onset == "q" && nucleus.starts_with('u'));
    let nucleus_ok = if onset == "q" && !glide_onset {
        false
    } else {
        parts.nuclei.contains(&nucleus) || (glide_onset && parts.nuclei.contains(&nucleus[1..]))
    };
    onset_ok && nucleus_ok && coda_ok
}

/// "hương", "HƯƠNG" or "Hương", but not "hƯơng".
fn has_word_case(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next();
    let rest = chars.as_str();
    !rest.chars().any(char::is_uppercase) || !rest.chars().any(char::is_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_syllables_pass() {
        for word in [
            "Nguyễn",
            "Thị",
            "Hương",
            "Phường",
            "Hải",
            "Châu",
            "Đất",
            "ở",
            "tại",
            "đô",
            "thị",
            "Trần",
            "Văn",
            "Khương",
            "Kiệt",
            "Ông",
            "Ích",
            "Khiêm",
            "giữa",
            "quyết",
            "Quốc",
            "khuỷu",
            "NGUYỄN",
            "rượu",
            "gì",
            "a",
            "xoong",
            "thuở",
            "yêu",
            "oanh",
            "nghiêng",
        ] {
            assert!(is_vietnamese_syllable(word), "{word}");
        }
    }

    #[test]
    fn mojibake_fails() {
        for word in [
            // TCVN3 bytes read as Windows-1252 / VNI
            "NguyÔn",
            "Th\u{1ecb}\u{1ecb}",
            "h\u{b5}ng",
            // VNI bytes read as TCVN3 or CP1258
            "Nguyeón",
            "Nguyeăn",
            "Höông",
            // two tones, tone on a consonant, stray mark, replacement character
            "Nguyờịn",
            "ñang",
            "x\u{301}",
            "Ph\u{fffd}",
            // mixed case
            "hƯơng",
            // impossible shapes
            "aăn",
            "qa",
            "ngk",
            "ưô",
        ] {
            assert!(!is_vietnamese_syllable(word), "{word}");
        }
    }
}
