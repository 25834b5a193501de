//! Flattening a document into named scalar leaves, shared by SenML and line protocol.

use std::collections::HashSet;

use serde_json::{Map, Number, Value};

use crate::FormatError;

/// A scalar value of a document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Leaf<'a> {
    Number(&'a Number),
    Bool(bool),
    Text(&'a str),
}

/// Every non-null scalar of `map`, in document order, named by its path joined with `_`
/// (`gps_1_latitude`, `samples_0`). Fails when two paths flatten to the same name.
pub(crate) fn flatten(map: &Map<String, Value>) -> Result<Vec<(String, Leaf<'_>)>, FormatError> {
    let mut out = Vec::new();
    for (key, value) in map {
        walk(key.clone(), value, &mut out);
    }
    let mut seen = HashSet::with_capacity(out.len());
    for (name, _) in &out {
        if !seen.insert(name.as_str()) {
            return Err(FormatError::DuplicateName { name: name.clone() });
        }
    }
    Ok(out)
}

fn walk<'a>(name: String, value: &'a Value, out: &mut Vec<(String, Leaf<'a>)>) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push((name, Leaf::Bool(*b))),
        Value::Number(n) => out.push((name, Leaf::Number(n))),
        Value::String(s) => out.push((name, Leaf::Text(s))),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(format!("{name}_{i}"), item, out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                walk(format!("{name}_{key}"), item, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(value: Value) -> Result<Vec<String>, FormatError> {
        let Value::Object(map) = value else {
            panic!("test input must be a map")
        };
        Ok(flatten(&map)?.into_iter().map(|(n, _)| n).collect())
    }

    #[test]
    fn flatten_joins_nested_maps_and_indexes_arrays() {
        let got = names(json!({"accelerometer_6": {"x": 1, "y": [2, {"z": 3}]}, "n": null}));
        assert_eq!(
            got,
            Ok(vec![
                "accelerometer_6_x".to_string(),
                "accelerometer_6_y_0".to_string(),
                "accelerometer_6_y_1_z".to_string(),
            ])
        );
    }

    #[test]
    fn flatten_rejects_two_paths_with_one_name() {
        assert_eq!(
            names(json!({"a_b": 1, "a": {"b": 2}})),
            Err(FormatError::DuplicateName { name: "a_b".into() })
        );
    }
}
