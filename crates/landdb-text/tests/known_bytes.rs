//! Decoding bytes whose meaning is documented (shared/domain/cadastre.md, the VNI standard, Windows-1258).

use landdb_text::{Encoding, decode};

#[test]
fn tcvn3_bytes_from_the_domain_notes() {
    let cases: [(u8, &str); 7] =
        [(0xB6, "ả"), (0xBE, "ắ"), (0xEA, "ờ"), (0xAC, "ơ"), (0xAE, "đ"), (0xA7, "Đ"), (0xAD, "ư")];
    for (byte, letter) in cases {
        assert_eq!(decode(&[byte], Encoding::Tcvn3), letter, "{byte:02X}");
    }
    // Ư (capital) is 0xA6 and ư is 0xAD, as glibc's TCVN5712-1 has them.
    assert_eq!(decode(&[0xA6], Encoding::Tcvn3), "Ư");
}

#[test]
fn tcvn3_whole_words() {
    assert_eq!(decode(b"Kh\xAD\xACng", Encoding::Tcvn3), "Khương");
    assert_eq!(decode(b"Nguy\xD4n Th\xDE H\xAD\xACng", Encoding::Tcvn3), "Nguyễn Thị Hương");
    assert_eq!(decode(b"\xA7\xCAt \xEB t\xB9i \xAE\xAB th\xDE", Encoding::Tcvn3), "Đất ở tại đô thị");
}

#[test]
fn tcvn3_upper_case_toned_letters_of_the_vn1_table() {
    // glibc's TCVN5712-1 places capitals in C0 and 0x80-0x9F positions.
    assert_eq!(decode(&[0x01, 0x80, 0x9E, 0xFF], Encoding::Tcvn3), "ÚÀỦỐ");
}

#[test]
fn tcvn3_combining_tone_bytes_compose_with_the_letter_before() {
    // 0xB0-0xB4 are combining grave, hook, tilde, acute, dot below.
    assert_eq!(decode(b"a\xB0 A\xB3 \xA9\xB4", Encoding::Tcvn3), "à Á ậ");
}

#[test]
fn vni_base_letter_plus_diacritic_byte() {
    let cases: [(&[u8], &str); 14] = [
        (b"a\xF8", "à"),
        (b"a\xF9", "á"),
        (b"a\xFB", "ả"),
        (b"a\xF5", "ã"),
        (b"a\xEF", "ạ"),
        (b"a\xE2", "â"),
        (b"a\xE1", "ấ"),
        (b"a\xEA", "ă"),
        (b"a\xE9", "ắ"),
        (b"e\xE4", "ệ"),
        (b"\xF4\xF9", "ớ"),
        (b"\xF6\xEF", "ự"),
        (b"A\xD8", "À"),
        (b"O\xC1", "Ố"),
    ];
    for (bytes, letter) in cases {
        assert_eq!(decode(bytes, Encoding::Vni), letter, "{bytes:02X?}");
    }
}

#[test]
fn vni_single_byte_letters() {
    assert_eq!(decode(b"\xF4\xF6\xF1\xD1\xD4\xD6", Encoding::Vni), "ơưđĐƠƯ");
    assert_eq!(decode(b"\xED\xEC\xE6\xF3\xF2\xEE", Encoding::Vni), "íìỉĩịỵ");
    assert_eq!(decode(b"\xCD\xCC\xC6\xD3\xD2\xCE", Encoding::Vni), "ÍÌỈĨỊỴ");
}

#[test]
fn vni_whole_words() {
    assert_eq!(decode(b"Nguye\xE3n Th\xF2 H\xF6\xF4ng", Encoding::Vni), "Nguyễn Thị Hương");
    assert_eq!(decode(b"\xD1a\xE1t \xF4\xFB ta\xEFi \xF1o\xE2 th\xF2", Encoding::Vni), "Đất ở tại đô thị");
    assert_eq!(decode(b"NGUYE\xC3N", Encoding::Vni), "NGUYỄN");
}

#[test]
fn cp1258_tone_bytes_compose() {
    assert_eq!(decode(b"Nguy\xEA\xDEn Thi\xF2 H\xFD\xF5ng", Encoding::Cp1258), "Nguyễn Thị Hương");
    assert_eq!(decode(b"\xD0\xE2\xECt \xF5\xD2", Encoding::Cp1258), "Đất ở");
    // Windows tools also wrote the precomposed Latin-1 letters; both spellings decode alike.
    assert_eq!(decode(b"\xE0 a\xCC", Encoding::Cp1258), "à à");
}

#[test]
fn undefined_bytes_and_invalid_utf8_become_replacement_characters() {
    assert_eq!(decode(&[b'a', 0x81, b'b'], Encoding::Cp1258), "a\u{FFFD}b");
    assert_eq!(decode(&[b'a', 0x81, b'b'], Encoding::Vni), "a\u{FFFD}b");
    assert_eq!(decode(&[b'a', 0xFF, b'b'], Encoding::Utf8), "a\u{FFFD}b");
}

#[test]
fn utf8_is_composed() {
    assert_eq!(decode("Nguye\u{302}\u{303}n".as_bytes(), Encoding::Utf8), "Nguyễn");
}
