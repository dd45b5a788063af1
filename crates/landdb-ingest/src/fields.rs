//! A record's attributes read as the field profile types them: each mapped field's value must be
//! of its kind ([`FieldKind`]), or the record gets `wrong_type` naming the field and the value;
//! nothing is coerced (`true` is no commune code, `[1]` no parcel number, `1e20` no sheet).
//! Control characters (NUL…) never travel further: in a key field they refuse the record
//! (`control_character`; a key must be exact), anywhere else they are removed with a warning
//! (`control_characters_removed`), since PostgreSQL refuses a NUL in text and JSON alike. A
//! field that occurs twice (a GeoJSON feature can say `"MaXa"` twice) refuses the record
//! (`duplicate_field`).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::profiles::{Canonical, FieldKind, FieldMapping};
use crate::source::{AttrValue, SourceRecord, ValueError};
use crate::verdict::{Reason, ReasonCode};

/// What a reason says instead of a right holder's value.
const NOT_QUOTED: &str = "the value is personal data and is not repeated here";

/// Longest sheet or parcel number, in characters: a key is indexed, and real ones are short.
pub const MAX_KEY_CHARS: usize = 64;

/// The mapped and unmapped fields of one record, read.
#[derive(Debug, Default)]
pub struct RecordFields<'r> {
    /// The source field each canonical attribute was read from (the first that maps to it).
    names: HashMap<Canonical, &'r str>,
    texts: HashMap<Canonical, String>,
    numbers: HashMap<Canonical, f64>,
    /// Attributes whose value was refused (a reason says why).
    refused: HashSet<Canonical>,
    /// Fields that map to nothing, as JSON, cleaned.
    pub extra: Map<String, Value>,
}

impl<'r> RecordFields<'r> {
    /// Reads `record`'s fields through `mapping`, adding a reason for each value refused or cleaned.
    pub fn read(record: &'r SourceRecord, mapping: &FieldMapping, reasons: &mut Vec<Reason>) -> Self {
        let mut fields = Self::default();
        let mut seen = HashSet::new();
        let mut repeated = HashSet::new();
        for (name, value) in &record.attributes {
            if !seen.insert(name.as_str()) {
                if !repeated.insert(name.as_str()) {
                    continue;
                }
                let values: Vec<String> =
                    record.attributes.iter().filter(|(n, _)| n == name).map(|(_, v)| v.shown()).collect();
                let shown = if mapping.canonical(name).is_some_and(Canonical::is_personal) {
                    NOT_QUOTED.to_owned()
                } else {
                    values.join(", ")
                };
                reasons.push(Reason::on(
                    ReasonCode::DuplicateField,
                    &without_controls(name),
                    format!("occurs {} times ({shown}); which one is meant cannot be told", values.len()),
                ));
                continue;
            }
            match mapping.canonical(name) {
                Some(c) if fields.names.contains_key(&c) => {}
                Some(c) => {
                    fields.names.insert(c, name);
                    fields.read_one(c, name, value, reasons);
                }
                None if *value != AttrValue::Null => {
                    let mut json = value.to_json();
                    let mut cleaned = clean_json(&mut json);
                    let key = without_controls(name);
                    cleaned |= matches!(key, Cow::Owned(_));
                    if cleaned {
                        reasons.push(removed(name));
                    }
                    fields.extra.insert(key.into_owned(), json);
                }
                None => {}
            }
        }
        fields
    }

    fn read_one(&mut self, c: Canonical, name: &str, value: &AttrValue, reasons: &mut Vec<Reason>) {
        let refuse = |fields: &mut Self, reasons: &mut Vec<Reason>, reason: Reason| {
            reasons.push(reason);
            fields.refused.insert(c);
        };
        let wrong = |e: ValueError| {
            let code = match e {
                ValueError::WrongType(_) => ReasonCode::WrongType,
                ValueError::Invalid(_) => ReasonCode::InvalidValue,
            };
            let detail =
                if c.is_personal() { format!("not a value this field can hold ({NOT_QUOTED})") } else { e.to_string() };
            Reason::on(code, name, detail)
        };
        match c.kind() {
            FieldKind::Code => match value.code() {
                Err(e) => refuse(self, reasons, wrong(e)),
                Ok(None) => {}
                Ok(Some(code)) if has_controls(&code) => refuse(
                    self,
                    reasons,
                    Reason::on(
                        ReasonCode::ControlCharacter,
                        name,
                        format!("{} holds a control character; a key must be exact", value.shown()),
                    ),
                ),
                Ok(Some(code)) if code.chars().count() > MAX_KEY_CHARS => refuse(
                    self,
                    reasons,
                    Reason::on(
                        ReasonCode::InvalidValue,
                        name,
                        format!(
                            "{} is {} characters long; a key part has at most {MAX_KEY_CHARS}",
                            value.shown(),
                            code.chars().count()
                        ),
                    ),
                ),
                Ok(Some(code)) => {
                    self.texts.insert(c, code);
                }
            },
            FieldKind::Number => match value.number() {
                Err(e) => refuse(self, reasons, wrong(e)),
                Ok(None) => {}
                Ok(Some(n)) => {
                    self.numbers.insert(c, n);
                }
            },
            FieldKind::Text => match value.plain_text() {
                Err(e) => refuse(self, reasons, wrong(e)),
                Ok(None) => {}
                Ok(Some(text)) => {
                    let clean = without_controls(&text);
                    if matches!(clean, Cow::Owned(_)) {
                        reasons.push(removed(name));
                    }
                    let clean = clean.trim();
                    if !clean.is_empty() {
                        self.texts.insert(c, clean.to_owned());
                    }
                }
            },
        }
    }

    /// The text (or code) of attribute `c`, if it had an acceptable one.
    pub fn text(&self, c: Canonical) -> Option<String> {
        self.texts.get(&c).cloned()
    }

    /// The number of attribute `c`, if it had an acceptable one.
    pub fn number(&self, c: Canonical) -> Option<f64> {
        self.numbers.get(&c).copied()
    }

    /// The source field `c` was read from, or `fallback` (the usual name) when none maps to it.
    pub fn name(&self, c: Canonical, fallback: &str) -> String {
        self.names.get(&c).map_or_else(|| fallback.to_owned(), |n| (*n).to_owned())
    }

    /// Whether `c` had a value that was refused (its reason is already given).
    pub fn refused(&self, c: Canonical) -> bool {
        self.refused.contains(&c)
    }
}

fn removed(field: &str) -> Reason {
    Reason::on(
        ReasonCode::ControlCharactersRemoved,
        &without_controls(field),
        "removed control characters (NUL and the like) from the value",
    )
}

/// A control character that text must not carry: every one but tab, line feed and carriage return.
fn is_unwanted(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

pub fn has_controls(text: &str) -> bool {
    text.chars().any(is_unwanted)
}

/// `text` without control characters (borrowed when it had none).
pub fn without_controls(text: &str) -> Cow<'_, str> {
    if has_controls(text) {
        Cow::Owned(text.chars().filter(|c| !is_unwanted(*c)).collect())
    } else {
        Cow::Borrowed(text)
    }
}

/// Removes control characters from every string and key of `value`; true if any were.
pub fn clean_json(value: &mut Value) -> bool {
    match value {
        Value::String(s) => match without_controls(s) {
            Cow::Owned(clean) => {
                *s = clean;
                true
            }
            Cow::Borrowed(_) => false,
        },
        Value::Array(items) => items.iter_mut().fold(false, |any, v| clean_json(v) | any),
        Value::Object(map) => {
            let mut any = false;
            let entries = std::mem::take(map);
            for (k, mut v) in entries {
                any |= clean_json(&mut v);
                let key = without_controls(&k);
                any |= matches!(key, Cow::Owned(_));
                map.insert(key.into_owned(), v);
            }
            any
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceGeometry;

    fn read(attributes: Vec<(&str, AttrValue)>) -> (Vec<Reason>, HashMap<Canonical, String>, Map<String, Value>) {
        let record = SourceRecord {
            feature: 1,
            attributes: attributes.into_iter().map(|(n, v)| (n.to_owned(), v)).collect(),
            geometry: SourceGeometry::Null,
        };
        let mapping = FieldMapping::builtin().expect("profile");
        let mut reasons = Vec::new();
        let fields = RecordFields::read(&record, &mapping, &mut reasons);
        (reasons, fields.texts.clone(), fields.extra.clone())
    }

    fn json(text: &str) -> AttrValue {
        AttrValue::Compound(serde_json::from_str(text).expect("json"))
    }

    /// Each of these once became a code or a number without a word.
    #[test]
    fn values_of_the_wrong_type_are_refused_naming_field_and_value() {
        for (field, value, shown) in [
            ("MaXa", AttrValue::Boolean(true), "true"),
            ("SoThuTuThua", json("[1]"), "[1]"),
            ("SoHieuToBanDo", json(r#"{"to":1}"#), r#"{"to":1}"#),
            ("SoThuTuThua", AttrValue::Real(1e20), "1e+20"),
            ("SoHieuToBanDo", AttrValue::Boolean(false), "false"),
            ("SoHieuToBanDo", AttrValue::Real(12.5), "12.5"),
            ("SoHieuToBanDo", AttrValue::Integer(-3), "-3"),
            ("DienTich", AttrValue::Boolean(true), "true"),
            ("DienTich", AttrValue::Real(f64::INFINITY), "inf"),
            ("DiaChi", json(r#"{"a":1}"#), r#"{"a":1}"#),
        ] {
            let (reasons, texts, _) = read(vec![(field, value.clone())]);
            assert_eq!(reasons.len(), 1, "{field} {value:?}: {reasons:?}");
            assert_eq!(reasons[0].code, ReasonCode::WrongType, "{field} {value:?}");
            assert_eq!(reasons[0].field.as_deref(), Some(field));
            assert!(reasons[0].detail.contains(shown) || shown == "inf", "{}", reasons[0].detail);
            assert!(texts.is_empty(), "{field} {value:?} became {texts:?}");
        }
    }

    /// A right holder's values are never quoted: reasons are kept in clear, read by the
    /// uploader's staff and counted in reports.
    #[test]
    fn a_holders_value_is_never_quoted_in_a_reason() {
        for (field, value) in [
            ("TenChu", json(r#"{"ho":"Nguyễn Văn Bình"}"#)),
            ("SoDinhDanhC1", json(r#"["048185000123"]"#)),
            ("NamSinhC1", AttrValue::Text("một chín tám lăm".into())),
        ] {
            let (reasons, _, _) = read(vec![(field, value)]);
            assert_eq!(reasons.len(), 1, "{field}: {reasons:?}");
            let detail = &reasons[0].detail;
            assert!(detail.contains("personal data"), "{detail}");
            for secret in ["Bình", "048185000123", "chín"] {
                assert!(!detail.contains(secret), "{field}: {detail}");
            }
        }
        let (reasons, _, _) = read(vec![
            ("TenChu", AttrValue::Text("Nguyễn Văn Bình".into())),
            ("TenChu", AttrValue::Text("Trần Thị Lan".into())),
        ]);
        assert_eq!(reasons[0].code, ReasonCode::DuplicateField);
        assert!(!reasons[0].detail.contains("Bình") && reasons[0].detail.contains("2 times"), "{}", reasons[0].detail);
    }

    #[test]
    fn a_field_twice_refuses_the_record() {
        let (reasons, _, _) = read(vec![
            ("MaXa", AttrValue::Text("20194".into())),
            ("MaXa", AttrValue::Text("20197".into())),
            ("MaXa", AttrValue::Text("20194".into())),
        ]);
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert_eq!((reasons[0].code, reasons[0].field.as_deref()), (ReasonCode::DuplicateField, Some("MaXa")));
        assert!(reasons[0].detail.contains(r#"3 times ("20194", "20197", "20194")"#), "{}", reasons[0].detail);
    }

    #[test]
    fn codes_from_whole_numbers_and_text_are_taken() {
        let (reasons, texts, _) = read(vec![
            ("MaXa", AttrValue::Integer(20194)),
            ("SoHieuToBanDo", AttrValue::Real(12.0)),
            ("SoThuTuThua", AttrValue::Text(" 0345 ".into())),
        ]);
        assert!(reasons.is_empty(), "{reasons:?}");
        assert_eq!(texts[&Canonical::CommuneCode], "20194");
        assert_eq!(texts[&Canonical::Sheet], "12");
        assert_eq!(texts[&Canonical::Number], "0345");
    }

    #[test]
    fn control_characters_refuse_a_key_and_are_removed_elsewhere() {
        let (reasons, texts, extra) = read(vec![
            ("SoThuTuThua", AttrValue::Text("12\u{0}".into())),
            ("DiaChi", AttrValue::Text("Tổ 5\u{0}, Hải Châu".into())),
            ("Ghi\u{1}Chu", json("{\"a\\u0000\": [\"x\\u0007y\"]}")),
        ]);
        let codes: Vec<(ReasonCode, Option<&str>)> = reasons.iter().map(|r| (r.code, r.field.as_deref())).collect();
        assert_eq!(
            codes,
            [
                (ReasonCode::ControlCharacter, Some("SoThuTuThua")),
                (ReasonCode::ControlCharactersRemoved, Some("DiaChi")),
                (ReasonCode::ControlCharactersRemoved, Some("GhiChu")),
            ]
        );
        assert!(!texts.contains_key(&Canonical::Number));
        assert_eq!(texts[&Canonical::Address], "Tổ 5, Hải Châu");
        assert_eq!(extra["GhiChu"], serde_json::json!({ "a": ["xy"] }));
        // Tab and line breaks are text.
        let (reasons, texts, _) = read(vec![("DiaChi", AttrValue::Text("kiệt 5\ntổ 3\t".into()))]);
        assert!(reasons.is_empty());
        assert_eq!(texts[&Canonical::Address], "kiệt 5\ntổ 3");
    }
}
