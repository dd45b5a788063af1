//! Vietnamese test text shared by the integration tests.

#![allow(dead_code, reason = "each test binary uses a different part")]

use landdb_text::Encoding;
use unicode_normalization::UnicodeNormalization;

pub const LEGACY: [Encoding; 3] = [Encoding::Tcvn3, Encoding::Vni, Encoding::Cp1258];

/// The 134 precomposed Vietnamese letters that are not ASCII: 67 lower case, then their capitals.
pub fn vietnamese_letters() -> Vec<char> {
    let tones = ["", "\u{300}", "\u{301}", "\u{309}", "\u{303}", "\u{323}"];
    let mut lower: Vec<char> = "aăâeêioôơuưy"
        .chars()
        .flat_map(|vowel| tones.iter().map(move |tone| format!("{vowel}{tone}").nfc().collect::<String>()))
        .map(|letter| letter.chars().next().expect("a letter"))
        .filter(|letter| !letter.is_ascii())
        .collect();
    lower.push('đ');
    let upper: Vec<char> = lower.iter().flat_map(|c| c.to_uppercase()).collect();
    lower.into_iter().chain(upper).collect()
}

/// Names and addresses as they appear in cadastral attribute tables.
pub const NAMES_AND_ADDRESSES: [&str; 22] = [
    "Nguyễn Thị Hương",
    "Phường Hải Châu",
    "Đất ở tại đô thị",
    "Trần Văn Khương",
    "Kiệt 34/5 Ông Ích Khiêm",
    "Lê Thị Thu Thủy",
    "Phạm Đức Thắng",
    "Hoàng Ngọc Ánh",
    "Võ Văn Kiệt",
    "Đặng Thị Mỹ Duyên",
    "Bùi Quang Vinh",
    "Huỳnh Tấn Phát",
    "Đường Nguyễn Văn Linh",
    "Tổ 12, phường Thạch Thang",
    "Quận Sơn Trà, thành phố Đà Nẵng",
    "Phường Hòa Khánh Bắc",
    "Xã Hòa Vang",
    "Đất trồng cây lâu năm",
    "Đất nông nghiệp khác",
    "Thửa đất số 125, tờ bản đồ số 7",
    "Ngô Thị Nguyệt",
    "Dương Quốc Tuấn",
];
