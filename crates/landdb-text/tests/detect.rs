//! `detect` names the encoding of realistic attribute samples, and says when it cannot be sure.

mod common;

use common::{LEGACY, NAMES_AND_ADDRESSES};
use landdb_text::{Detection, Encoding, detect, encode};

fn encoded(texts: &[&str], encoding: Encoding) -> Vec<Vec<u8>> {
    texts.iter().map(|t| encode(t, encoding).expect("Vietnamese text is encodable")).collect()
}

fn detect_owned(samples: &[Vec<u8>]) -> Detection {
    let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
    detect(&refs)
}

#[test]
fn names_and_addresses_are_recognised_in_every_encoding() {
    for encoding in Encoding::ALL {
        let detection = detect_owned(&encoded(&NAMES_AND_ADDRESSES, encoding));
        assert_eq!(detection, Detection { encoding, confident: true }, "{encoding}");
    }
}

#[test]
fn upper_case_names_are_recognised() {
    let upper: Vec<String> = NAMES_AND_ADDRESSES.iter().map(|t| t.to_uppercase()).collect();
    let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
    for encoding in LEGACY {
        let detection = detect_owned(&encoded(&upper, encoding));
        assert_eq!(detection, Detection { encoding, confident: true }, "{encoding}");
    }
}

#[test]
fn a_handful_of_names_is_enough() {
    let few = &NAMES_AND_ADDRESSES[..5];
    for encoding in LEGACY {
        assert_eq!(detect_owned(&encoded(few, encoding)).encoding, encoding, "{encoding}");
    }
}

#[test]
fn ascii_only_is_utf8_but_not_confident() {
    let samples: [&[u8]; 3] = [b"Lot 12", b"DGT", b"ONT"];
    assert_eq!(detect(&samples), Detection { encoding: Encoding::Utf8, confident: false });
    assert_eq!(detect(&[]), Detection { encoding: Encoding::Utf8, confident: false });
}

#[test]
fn one_short_legacy_word_is_not_confident() {
    let samples = encoded(&["Hà"], Encoding::Cp1258);
    assert!(!detect_owned(&samples).confident);
}

#[test]
fn mostly_utf8_with_a_broken_record_is_still_utf8() {
    let mut samples = encoded(&NAMES_AND_ADDRESSES, Encoding::Utf8);
    samples.push(vec![b'N', 0xFF, b'n']);
    assert_eq!(detect_owned(&samples).encoding, Encoding::Utf8);
}

#[test]
fn ascii_fields_mixed_in_do_not_change_the_answer() {
    for encoding in LEGACY {
        let mut samples = encoded(&NAMES_AND_ADDRESSES, encoding);
        samples.extend([b"ODT".to_vec(), b"CLN".to_vec(), b"12".to_vec(), b"Nguyen Van A".to_vec()]);
        assert_eq!(detect_owned(&samples), Detection { encoding, confident: true }, "{encoding}");
    }
}
