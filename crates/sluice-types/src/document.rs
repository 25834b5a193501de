use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Deepest nesting a document may have (objects and arrays).
pub const MAX_DOCUMENT_DEPTH: usize = 64;

/// A decoded document: a JSON-compatible map at the top level, with finite numbers and at
/// most [`MAX_DOCUMENT_DEPTH`] levels of nesting.
///
/// Guests hand documents to the host as JSON or CBOR bytes; the constructors check them, so a
/// `Document` in hand is always valid.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(transparent)]
pub struct Document(Map<String, Value>);

/// Why bytes or a value are not a valid document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum DocumentError {
    /// The bytes are not JSON.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// The bytes are not CBOR, or use CBOR that has no JSON equivalent.
    #[error("not valid CBOR: {0}")]
    Cbor(String),
    /// The top level is not a map.
    #[error("a document must be a map at the top level, found {0}")]
    NotAMap(String),
    /// Nesting is deeper than allowed.
    #[error("document nests deeper than {MAX_DOCUMENT_DEPTH} levels")]
    TooDeep,
    /// A number is NaN or infinite.
    #[error("document holds a number that is not finite at {0}")]
    NonFinite(String),
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a map",
    }
}

fn check_depth(value: &Value, depth: usize) -> Result<(), DocumentError> {
    if depth > MAX_DOCUMENT_DEPTH {
        return Err(DocumentError::TooDeep);
    }
    match value {
        Value::Array(items) => items.iter().try_for_each(|v| check_depth(v, depth + 1)),
        Value::Object(map) => map.values().try_for_each(|v| check_depth(v, depth + 1)),
        _ => Ok(()),
    }
}

impl Document {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `value` and wraps it.
    pub fn from_value(value: Value) -> Result<Self, DocumentError> {
        check_depth(&value, 1)?;
        match value {
            Value::Object(map) => Ok(Self(map)),
            other => Err(DocumentError::NotAMap(kind_of(&other).to_string())),
        }
    }

    /// Parses and checks JSON bytes.
    pub fn from_json_slice(bytes: &[u8]) -> Result<Self, DocumentError> {
        // serde_json refuses NaN/Infinity and stops at 128 levels of nesting on its own.
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            if e.to_string().starts_with("recursion limit exceeded") {
                DocumentError::TooDeep
            } else {
                DocumentError::Json(e.to_string())
            }
        })?;
        Self::from_value(value)
    }

    /// The document as a JSON value (an object).
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The document as an owned JSON value.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// A JSON value borrowed as such (clones the map).
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }

    /// Compact JSON bytes.
    pub fn to_json_vec(&self) -> Vec<u8> {
        // Serializing a map of strings to values cannot fail.
        serde_json::to_vec(&self.0).unwrap_or_default()
    }

    /// Checks a CBOR value converted to JSON: see [`Document::from_value`].
    pub fn from_cbor_value(value: Value) -> Result<Self, DocumentError> {
        Self::from_value(value)
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Document::from_value(value).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<Value> for Document {
    type Error = DocumentError;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        Document::from_value(value)
    }
}

impl std::fmt::Display for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_json_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn document_accepts_a_map() {
        let doc = Document::from_json_slice(br#"{"temperature": 21.5}"#).expect("valid");
        assert_eq!(doc.to_value(), json!({"temperature": 21.5}));
    }

    #[test]
    fn document_rejects_a_top_level_array() {
        assert_eq!(
            Document::from_json_slice(b"[1,2]"),
            Err(DocumentError::NotAMap("an array".into()))
        );
    }

    #[test]
    fn document_rejects_deep_nesting() {
        let mut value = json!(1);
        for _ in 0..MAX_DOCUMENT_DEPTH {
            value = json!({ "a": value });
        }
        assert_eq!(Document::from_value(value), Err(DocumentError::TooDeep));
    }

    #[test]
    fn document_rejects_garbage_bytes() {
        assert!(matches!(
            Document::from_json_slice(b"\xff\x00"),
            Err(DocumentError::Json(_))
        ));
    }
}
