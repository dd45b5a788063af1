//! Synthetic right holders and addresses with realistic Vietnamese names. Nobody here is real.

use rand::Rng;
use rand::seq::SliceRandom;

/// Family names with their rough share of the population (Nguyễn is about 38 %).
const FAMILY: [(&str, u32); 16] = [
    ("Nguyễn", 38),
    ("Trần", 11),
    ("Lê", 9),
    ("Phạm", 7),
    ("Huỳnh", 5),
    ("Hoàng", 3),
    ("Phan", 4),
    ("Võ", 4),
    ("Vũ", 2),
    ("Đặng", 2),
    ("Bùi", 2),
    ("Đỗ", 2),
    ("Hồ", 2),
    ("Ngô", 2),
    ("Dương", 1),
    ("Lý", 1),
];
const MIDDLE_MALE: [&str; 8] = ["Văn", "Hữu", "Đức", "Minh", "Quốc", "Thanh", "Công", "Xuân"];
const MIDDLE_FEMALE: [&str; 6] = ["Thị", "Ngọc", "Thu", "Kim", "Thanh", "Mỹ"];
const GIVEN_MALE: [&str; 16] = [
    "An", "Bình", "Cường", "Dũng", "Hùng", "Khương", "Long", "Nam", "Phúc", "Quang", "Sơn", "Tâm", "Thắng", "Tuấn",
    "Việt", "Đạt",
];
const GIVEN_FEMALE: [&str; 14] =
    ["Anh", "Hương", "Lan", "Mai", "Nga", "Ngọc", "Nhung", "Oanh", "Thảo", "Trang", "Vy", "Yến", "Hằng", "Ánh"];
const STREETS: [&str; 12] = [
    "Lê Duẩn",
    "Trần Phú",
    "Nguyễn Văn Linh",
    "Hùng Vương",
    "Ông Ích Khiêm",
    "Phan Châu Trinh",
    "Hoàng Diệu",
    "Điện Biên Phủ",
    "Nguyễn Tri Phương",
    "Hải Phòng",
    "Lý Thường Kiệt",
    "Quang Trung",
];

/// A full name such as "Nguyễn Thị Hương".
pub fn name<R: Rng>(rng: &mut R) -> String {
    let family = FAMILY.choose_weighted(rng, |f| f.1).map_or("Nguyễn", |f| f.0);
    let (middle, given) = if rng.gen_bool(0.5) {
        (MIDDLE_MALE.choose(rng), GIVEN_MALE.choose(rng))
    } else {
        (MIDDLE_FEMALE.choose(rng), GIVEN_FEMALE.choose(rng))
    };
    format!("{family} {} {}", middle.unwrap_or(&"Văn"), given.unwrap_or(&"An"))
}

/// A birth year of an adult land user.
pub fn birth_year<R: Rng>(rng: &mut R) -> i32 {
    rng.gen_range(1935..2004)
}

/// A house address on a street of the commune.
pub fn address<R: Rng>(rng: &mut R, commune: &str, province: &str) -> String {
    let street = STREETS.choose(rng).unwrap_or(&"Trần Phú");
    if rng.gen_bool(0.4) {
        format!("Kiệt {}/{} {street}, {commune}, {province}", rng.gen_range(1..200), rng.gen_range(1..40))
    } else {
        format!("Số {} {street}, {commune}, {province}", rng.gen_range(1..400))
    }
}
