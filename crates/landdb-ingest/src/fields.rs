//! Reading attribute values whatever type the source gave them: numbers stored as numbers where
//! the schema expects text, text where it expects numbers.

use serde_json::Value;

/// A text value: strings trimmed, whole numbers without a decimal point, empty as `None`.
pub fn text(value: Option<&Value>) -> Option<String> {
    let text = match value? {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        Value::Null | Value::Array(_) | Value::Object(_) => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// A number from a number or a numeric string (with `,` as decimal comma accepted).
pub fn number(value: Option<&Value>) -> Result<Option<f64>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => {
            s.trim().replace(',', ".").parse().map(Some).map_err(|_| format!("{s:?} is not a number"))
        }
        Some(other) => Err(format!("{other} is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_stored_as_numbers_read_as_text() {
        assert_eq!(text(Some(&json!(12))), Some("12".into()));
        assert_eq!(text(Some(&json!(12.0))), Some("12".into()));
        assert_eq!(text(Some(&json!(" 7a "))), Some("7a".into()));
        assert_eq!(text(Some(&json!(""))), None);
        assert_eq!(text(None), None);
    }

    #[test]
    fn numbers_read_from_text() {
        assert_eq!(number(Some(&json!("123,5"))), Ok(Some(123.5)));
        assert_eq!(number(Some(&json!(0))), Ok(Some(0.0)));
        assert!(number(Some(&json!("abc"))).is_err());
    }
}
