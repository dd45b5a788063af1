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

/// Gives every first holder a 12-digit citizen ID that agrees with their birth year (digits
/// 1–3 the province of birth registration, mostly `home`'s; digit 4 century and gender; digits
/// 5–6 the year; a six-digit sequence), and makes about one holder in five hold another parcel
/// of the commune as well (the same name, year and ID), as families do. Draws from its own
/// generator, so that adding IDs changed no other value of a seed's records.
pub fn assign_citizen_ids(records: &mut [crate::record::Record], seed: u64, home: &str, provinces: &[&str]) {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x4343_4344 ^ home.bytes().map(u64::from).sum::<u64>());
    let mut holders: Vec<(String, Option<i32>, String)> = Vec::new();
    for r in records.iter_mut().filter(|r| r.owner.is_some()) {
        if !holders.is_empty() && rng.gen_bool(0.2) {
            let (name, year, id) = holders[rng.gen_range(0..holders.len())].clone();
            (r.owner, r.owner_birth_year, r.owner_citizen_id) = (Some(name), year, Some(id));
            continue;
        }
        let year = r.owner_birth_year.unwrap_or(1970);
        let province = if rng.gen_bool(0.8) { home } else { provinces.choose(&mut rng).copied().unwrap_or(home) };
        let century = u32::try_from((year - 1900) / 100 * 2).unwrap_or(0) + u32::from(rng.gen_bool(0.5));
        let id = format!("0{province}{century}{:02}{:06}", year % 100, rng.gen_range(0..1_000_000));
        r.owner_citizen_id = Some(id.clone());
        holders.push((r.owner.clone().unwrap_or_default(), r.owner_birth_year, id));
    }
}
