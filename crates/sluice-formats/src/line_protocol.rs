//! InfluxDB line protocol: one point per document.
//!
//! Escaping follows the line-protocol reference: measurements escape commas and spaces; tag
//! keys, tag values and field keys escape commas, equals signs and spaces; string field values
//! are double-quoted and escape double quotes and backslashes. Line breaks cannot be carried
//! anywhere and are refused.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::leaves::{Leaf, flatten};
use crate::{Envelope, FormatError};

fn check_line_break(element: &'static str, text: &str) -> Result<(), FormatError> {
    if text.contains(['\n', '\r']) {
        return Err(FormatError::LineBreak {
            element,
            text: text.to_string(),
        });
    }
    Ok(())
}

/// Appends `text` to `out`, putting a backslash before each of `special`.
fn push_escaped(out: &mut String, text: &str, special: &[char]) {
    for c in text.chars() {
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

const MEASUREMENT_SPECIAL: &[char] = &[',', ' '];
const KEY_SPECIAL: &[char] = &[',', '=', ' '];
const STRING_SPECIAL: &[char] = &['"', '\\'];

pub(crate) fn encode(envelope: &Envelope<'_>) -> Result<Vec<u8>, FormatError> {
    let uplink = envelope.uplink;
    if envelope.binding.is_empty() {
        return Err(FormatError::EmptyMeasurement);
    }
    let timestamp_ns = uplink
        .received_at_ms
        .checked_mul(1_000_000)
        .filter(|ns| i64::try_from(*ns).is_ok())
        .ok_or(FormatError::TimestampOutOfRange {
            received_at_ms: uplink.received_at_ms,
        })?;
    let fields = flatten(envelope.document.as_map())?;
    if fields.is_empty() {
        return Err(FormatError::NoFields {
            device_id: uplink.device_id.clone(),
        });
    }

    let mut line = String::new();
    check_line_break("measurement", envelope.binding)?;
    push_escaped(&mut line, envelope.binding, MEASUREMENT_SPECIAL);

    // `device` and `tenant` first; then metadata sorted by key, the last value of a repeated
    // key winning, and never overriding `device` or `tenant`. Empty tag values are left out
    // (line protocol does not allow them).
    let metadata: BTreeMap<&str, &str> = uplink
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .filter(|(k, _)| *k != "device" && *k != "tenant")
        .collect();
    let tags = [
        ("device", uplink.device_id.as_str()),
        ("tenant", envelope.tenant),
    ]
    .into_iter()
    .chain(metadata);
    for (key, value) in tags {
        if key.is_empty() || value.is_empty() {
            continue;
        }
        check_line_break("tag key", key)?;
        check_line_break("tag value", value)?;
        line.push(',');
        push_escaped(&mut line, key, KEY_SPECIAL);
        line.push('=');
        push_escaped(&mut line, value, KEY_SPECIAL);
    }

    for (i, (key, leaf)) in fields.iter().enumerate() {
        check_line_break("field key", key)?;
        line.push(if i == 0 { ' ' } else { ',' });
        push_escaped(&mut line, key, KEY_SPECIAL);
        line.push('=');
        match leaf {
            Leaf::Number(n) => {
                // Writing to a String cannot fail.
                let _ = if let Some(i) = n.as_i64() {
                    write!(line, "{i}i")
                } else if let Some(u) = n.as_u64() {
                    // Above i64::MAX: InfluxDB's unsigned integer type.
                    write!(line, "{u}u")
                } else {
                    // serde_json prints floats in their shortest round-trip form.
                    write!(line, "{n}")
                };
            }
            Leaf::Bool(b) => line.push_str(if *b { "true" } else { "false" }),
            Leaf::Text(s) => {
                check_line_break("field value", s)?;
                line.push('"');
                push_escaped(&mut line, s, STRING_SPECIAL);
                line.push('"');
            }
        }
    }
    let _ = write!(line, " {timestamp_ns}");
    line.push('\n');
    Ok(line.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str, special: &[char]) -> String {
        let mut out = String::new();
        push_escaped(&mut out, text, special);
        out
    }

    #[test]
    fn measurement_escapes_commas_and_spaces_only() {
        assert_eq!(escaped("a b,c=d", MEASUREMENT_SPECIAL), r"a\ b\,c=d");
    }

    #[test]
    fn keys_escape_commas_equals_and_spaces() {
        assert_eq!(escaped("a b,c=d\"", KEY_SPECIAL), r#"a\ b\,c\=d""#);
    }

    #[test]
    fn strings_escape_quotes_and_backslashes() {
        assert_eq!(
            escaped(r#"say "hi" \o/"#, STRING_SPECIAL),
            r#"say \"hi\" \\o/"#
        );
    }
}
