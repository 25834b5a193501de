//! SenML (RFC 8428) in JSON: one record per leaf; the first carries base name and base time.

use serde::Serialize;
use serde_json::Number;

use crate::leaves::{Leaf, flatten};
use crate::{Envelope, FormatError};

#[derive(Serialize)]
struct Record<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    bn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bt: Option<f64>,
    n: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<&'a Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vb: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vs: Option<&'a str>,
}

/// RFC 8428 section 4.5.1: a name starts with a letter or digit and uses only letters,
/// digits and `-:./_`.
fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '/' | '_'))
}

pub(crate) fn encode(envelope: &Envelope<'_>) -> Result<Vec<u8>, FormatError> {
    let base_name = format!("urn:dev:{}:", envelope.uplink.device_id);
    // Milliseconds to seconds: exact for any realistic time (below 2^53 ms).
    let base_time = envelope.uplink.received_at_ms as f64 / 1000.0;
    let leaves = flatten(envelope.document.as_map())?;
    let mut records = Vec::with_capacity(leaves.len());
    for (i, (name, leaf)) in leaves.into_iter().enumerate() {
        let full_name = format!("{base_name}{name}");
        if !is_valid_name(&full_name) {
            return Err(FormatError::InvalidSenmlName { name: full_name });
        }
        let first = i == 0;
        let mut record = Record {
            bn: first.then_some(base_name.as_str()),
            bt: first.then_some(base_time),
            n: name,
            v: None,
            vb: None,
            vs: None,
        };
        match leaf {
            Leaf::Number(n) => record.v = Some(n),
            Leaf::Bool(b) => record.vb = Some(b),
            Leaf::Text(s) => record.vs = Some(s),
        }
        records.push(record);
    }
    serde_json::to_vec(&records).map_err(|e| FormatError::Serialize {
        format: crate::OutputFormat::Senml,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senml_names_follow_rfc_8428() {
        assert!(is_valid_name("urn:dev:eui-0004a30b001c0530:gps_1_latitude"));
        assert!(!is_valid_name("urn:dev:a b:x"));
        assert!(!is_valid_name("-x"));
        assert!(!is_valid_name(""));
    }
}
