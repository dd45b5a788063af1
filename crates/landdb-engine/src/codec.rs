//! The byte encodings of the compact snapshot: variable-length integers, and the table of texts
//! that sheet and parcel numbers and address parts are interned in.

use std::collections::HashMap;

/// Appends `v` in 7-bit groups, low first (LEB128).
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// How many bytes [`put_varint`] takes for `v`.
pub fn varint_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).max(1).div_ceil(7)
}

/// Reads a value written by [`put_varint`] at `*at` and moves past it. Bytes past the end read as
/// zero, so a damaged buffer gives wrong numbers, never a panic.
#[inline]
pub fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = bytes.get(*at).copied().unwrap_or(0);
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 || shift >= 63 {
            return v;
        }
        shift += 7;
    }
}

/// Signed to unsigned, small magnitudes to small numbers.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Reads eight little-endian bytes at `*at` (zeros past the end).
#[inline]
pub fn fixed64(bytes: &[u8], at: &mut usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = bytes.get(*at..*at + 8) {
        b.copy_from_slice(s);
    }
    *at += 8;
    u64::from_le_bytes(b)
}

/// Distinct texts, each stored once; records refer to them by number.
#[derive(Debug, Default)]
pub struct Texts {
    bytes: String,
    ends: Vec<u32>,
    /// Text numbers in the order of their texts, to find a text's number.
    sorted: Vec<u32>,
}

impl Texts {
    pub fn from_parts(bytes: String, ends: Vec<u32>) -> Option<Self> {
        // Every end in order, within the bytes, on character boundaries.
        let mut start = 0;
        for end in &ends {
            let end = *end as usize;
            if end < start || !bytes.is_char_boundary(end) {
                return None;
            }
            start = end;
        }
        if start != bytes.len() {
            return None;
        }
        let mut texts = Texts { bytes, ends, sorted: Vec::new() };
        let mut sorted: Vec<u32> = (0..texts.ends.len() as u32).collect();
        sorted.sort_unstable_by(|a, b| texts.get(*a).cmp(texts.get(*b)));
        texts.sorted = sorted;
        Some(texts)
    }

    pub fn get(&self, n: u32) -> &str {
        let n = n as usize;
        let start = if n == 0 { 0 } else { self.ends.get(n - 1).copied().unwrap_or(0) as usize };
        let end = self.ends.get(n).copied().unwrap_or(0) as usize;
        self.bytes.get(start..end).unwrap_or_default()
    }

    /// The number of `text`, if the table holds it.
    pub fn find(&self, text: &str) -> Option<u32> {
        let i = self.sorted.partition_point(|n| self.get(*n) < text);
        self.sorted.get(i).copied().filter(|n| self.get(*n) == text)
    }

    pub fn parts(&self) -> (&str, &[u32]) {
        (&self.bytes, &self.ends)
    }

    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 4 + self.sorted.capacity() * 4
    }
}

/// Builds a [`Texts`], giving each distinct text its number once.
#[derive(Debug, Default)]
pub struct TextsBuilder {
    numbers: HashMap<String, u32>,
    bytes: String,
    ends: Vec<u32>,
}

impl TextsBuilder {
    pub fn intern(&mut self, text: &str) -> u32 {
        if let Some(n) = self.numbers.get(text) {
            return *n;
        }
        let n = self.ends.len() as u32;
        self.bytes.push_str(text);
        self.ends.push(self.bytes.len() as u32);
        self.numbers.insert(text.to_owned(), n);
        n
    }

    pub fn finish(self) -> Texts {
        Texts::from_parts(self.bytes, self.ends).unwrap_or_default()
    }
}

/// A sheet or parcel number: a plain decimal number is kept as itself, anything else as a text.
/// `n << 1` for a number, `text << 1 | 1` for a text.
pub fn text_or_number(texts: &mut TextsBuilder, raw: &str) -> u64 {
    match plain_number(raw) {
        Some(n) => n << 1,
        None => (u64::from(texts.intern(raw)) << 1) | 1,
    }
}

/// The code [`text_or_number`] gave `raw`, if `raw` can be in the table at all.
pub fn find_text_or_number(texts: &Texts, raw: &str) -> Option<u64> {
    match plain_number(raw) {
        Some(n) => Some(n << 1),
        None => texts.find(raw).map(|t| (u64::from(t) << 1) | 1),
    }
}

/// Writes the text a [`text_or_number`] code stands for.
pub fn text_of(texts: &Texts, code: u64) -> String {
    if code & 1 == 0 { (code >> 1).to_string() } else { texts.get((code >> 1) as u32).to_owned() }
}

/// `raw` as a number, if it is one written plainly: digits, no leading zero, below 2⁶².
fn plain_number(raw: &str) -> Option<u64> {
    let plain = !raw.is_empty() && raw.len() <= 18 && raw.bytes().all(|b| b.is_ascii_digit());
    let canonical = raw == "0" || !raw.starts_with('0');
    if plain && canonical { raw.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn varints_round_trip(values in proptest::collection::vec(proptest::num::i64::ANY, 0..50)) {
            let mut out = Vec::new();
            for v in &values {
                put_varint(&mut out, zigzag(*v));
            }
            proptest::prop_assert_eq!(values.iter().map(|v| varint_len(zigzag(*v))).sum::<usize>(), out.len());
            let mut at = 0;
            for v in &values {
                proptest::prop_assert_eq!(unzigzag(varint(&out, &mut at)), *v);
            }
            proptest::prop_assert_eq!(at, out.len());
        }

        /// Sheet and parcel numbers come back as they were written, leading zeros and all.
        #[test]
        fn texts_and_numbers_round_trip(raws in proptest::collection::vec("[0-9]{0,4}|[0-9A-Za-zĐđ/-]{1,6}", 1..30)) {
            let mut builder = TextsBuilder::default();
            let codes: Vec<u64> = raws.iter().map(|r| text_or_number(&mut builder, r)).collect();
            let texts = builder.finish();
            for (raw, code) in raws.iter().zip(&codes) {
                proptest::prop_assert_eq!(&text_of(&texts, *code), raw);
                proptest::prop_assert_eq!(find_text_or_number(&texts, raw), Some(*code));
            }
            proptest::prop_assert_eq!(find_text_or_number(&texts, "not-there-Ω"), None);
        }
    }
}
