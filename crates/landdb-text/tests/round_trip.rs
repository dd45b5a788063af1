//! decode(encode(text)) gives the text back, letter by letter and for real names, in every encoding.

mod common;

use common::{LEGACY, NAMES_AND_ADDRESSES, vietnamese_letters};
use landdb_text::{EncodeError, Encoding, decode, encode};

#[test]
fn there_are_134_vietnamese_letters() {
    let letters = vietnamese_letters();
    assert_eq!(letters.len(), 134);
    let distinct: std::collections::HashSet<char> = letters.iter().copied().collect();
    assert_eq!(distinct.len(), 134);
}

#[test]
fn every_vietnamese_letter_round_trips_in_every_encoding() {
    for encoding in Encoding::ALL {
        for letter in vietnamese_letters() {
            let text = letter.to_string();
            let bytes = encode(&text, encoding).unwrap_or_else(|e| panic!("{encoding}: {e}"));
            assert_eq!(decode(&bytes, encoding), text, "{encoding} {letter} = {bytes:02X?}");
        }
    }
}

#[test]
fn every_letter_round_trips_next_to_every_other() {
    // Catches a VNI pair formed across two letters, or a CP1258 tone mark joining the wrong base.
    let letters = vietnamese_letters();
    let ascii: Vec<char> = (' '..='~').collect();
    for encoding in LEGACY {
        for &first in letters.iter().chain(&ascii) {
            for &second in letters.iter().chain(&ascii) {
                let text = format!("{first}{second}");
                let bytes = encode(&text, encoding).expect("ASCII and Vietnamese letters are encodable");
                assert_eq!(decode(&bytes, encoding), text, "{encoding} {text:?} = {bytes:02X?}");
            }
        }
    }
}

#[test]
fn names_and_addresses_round_trip() {
    for encoding in Encoding::ALL {
        for text in NAMES_AND_ADDRESSES {
            let bytes = encode(text, encoding).unwrap_or_else(|e| panic!("{encoding}: {e}"));
            assert_eq!(decode(&bytes, encoding), text, "{encoding}");
        }
    }
}

#[test]
fn legacy_bytes_differ_from_utf8() {
    for encoding in LEGACY {
        let bytes = encode("Nguyễn Thị Hương", encoding).expect("Vietnamese");
        assert!(std::str::from_utf8(&bytes).is_err(), "{encoding} bytes should not be valid UTF-8");
    }
}

#[test]
fn decomposed_input_is_composed_before_encoding() {
    let decomposed = "Nguye\u{302}\u{303}n"; // ê + tilde as combining marks
    for encoding in Encoding::ALL {
        let bytes = encode(decomposed, encoding).expect("Vietnamese");
        assert_eq!(decode(&bytes, encoding), "Nguyễn", "{encoding}");
    }
}

#[test]
fn characters_without_a_byte_are_named() {
    let err = encode("Giá 5€", Encoding::Tcvn3).expect_err("TCVN3 has no euro sign");
    assert_eq!(err, EncodeError { character: '€', encoding: Encoding::Tcvn3 });
    assert_eq!(err.to_string(), "'€' (U+20AC) cannot be written in TCVN3");

    // In VNI 0xF1 'ñ' means đ and 0xF8 'ø' is the grave accent byte: neither can be written as itself.
    assert_eq!(encode("Señor", Encoding::Vni).expect_err("ñ is đ in VNI").character, 'ñ');
    assert_eq!(encode("Søren", Encoding::Vni).expect_err("ø is a diacritic").character, 'ø');
    assert_eq!(encode("中", Encoding::Cp1258).expect_err("no CJK").character, '中');
    assert!(encode("中", Encoding::Utf8).is_ok());
}

#[test]
fn cp1258_writes_like_glibc_iconv() {
    // Precomposed byte where Windows-1258 has one, else base + tone byte.
    assert_eq!(encode("à", Encoding::Cp1258).expect("Vietnamese"), [0xE0]);
    assert_eq!(encode("ả", Encoding::Cp1258).expect("Vietnamese"), b"a\xD2");
    assert_eq!(encode("ấ", Encoding::Cp1258).expect("Vietnamese"), [0xE2, 0xEC]);
    assert_eq!(encode("ặ", Encoding::Cp1258).expect("Vietnamese"), [0xE3, 0xF2]);
    assert_eq!(encode("ì", Encoding::Cp1258).expect("Vietnamese"), b"i\xCC");
    assert_eq!(encode("Ự", Encoding::Cp1258).expect("Vietnamese"), [0xDD, 0xF2]);
}
