//! The shape of a binding's `sources` and `sinks`, as users write them in the API.
//!
//! ```json
//! "sources": [{ "type": "mqtt", "topic": "acme/devices/+/up" }],
//! "sinks": [
//!   { "type": "mqtt", "name": "decoded", "topic": "acme/decoded/{device}", "format": "json" },
//!   { "type": "webhook", "url": "http://127.0.0.1:9000/ingest", "format": "senml" },
//!   { "type": "file", "path": "decoded.jsonl" }
//! ]
//! ```
//!
//! A tenant's MQTT topics and NATS subjects live under its own namespace: every source filter
//! and every sink topic starts with `<tenant>/` (NATS: `<tenant>.`), so one tenant can neither
//! read nor write another's traffic on a shared broker.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_formats::OutputFormat;

use crate::topic::{Template, TemplateVars, check_filter};

/// A binding's configuration is wrong; `field` is the JSON path of the culprit
/// (`sinks[1].qos`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct IoConfigError {
    /// Where: `sources[0].topic`, `sinks[2]`, ...
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl IoConfigError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Where a binding's messages come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SourceSpec {
    /// Subscribe to an MQTT topic filter on the service's broker.
    Mqtt(MqttSourceSpec),
    /// Subscribe to a NATS subject on the service's NATS server.
    Nats(NatsSourceSpec),
}

/// An MQTT subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSourceSpec {
    /// The topic filter, under `<tenant>/`.
    pub topic: String,
    /// Which topic level (0-based) holds the device id. Default: the first `+` level.
    #[serde(default)]
    pub device_id_level: Option<usize>,
    /// Which topic level holds the port as a decimal number, if any.
    #[serde(default)]
    pub port_level: Option<usize>,
    /// The port when no `port_level` is set.
    #[serde(default)]
    pub port: u16,
}

/// A NATS subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSourceSpec {
    /// The subject, under `<tenant>.` (`*` one token, `>` the rest).
    pub subject: String,
    /// Which token (0-based) holds the device id. Default: the first `*` token.
    #[serde(default)]
    pub device_id_token: Option<usize>,
    /// The port of every message.
    #[serde(default)]
    pub port: u16,
}

impl MqttSourceSpec {
    /// The level holding the device id: the configured one or the first `+`.
    pub fn device_level(&self) -> Option<usize> {
        self.device_id_level
            .or_else(|| self.topic.split('/').position(|level| level == "+"))
    }

    /// The device id and port of a message received on `topic` (which matched the filter).
    pub fn identify(&self, topic: &str) -> Result<(String, u16), String> {
        let levels: Vec<&str> = topic.split('/').collect();
        let device = self
            .device_level()
            .and_then(|i| levels.get(i))
            .filter(|d| !d.is_empty())
            .ok_or_else(|| format!("topic `{topic}` has no device id level"))?;
        let port = match self.port_level {
            Some(i) => levels
                .get(i)
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| format!("topic `{topic}` has no port number at level {i}"))?,
            None => self.port,
        };
        Ok((device.to_string(), port))
    }
}

impl NatsSourceSpec {
    /// The token holding the device id: the configured one or the first `*`.
    pub fn device_token(&self) -> Option<usize> {
        self.device_id_token
            .or_else(|| self.subject.split('.').position(|t| t == "*"))
    }

    /// The device id of a message received on `subject`.
    pub fn identify(&self, subject: &str) -> Result<(String, u16), String> {
        let device = self
            .device_token()
            .and_then(|i| subject.split('.').nth(i))
            .filter(|d| !d.is_empty())
            .ok_or_else(|| format!("subject `{subject}` has no device id token"))?;
        Ok((device.to_string(), self.port))
    }
}

/// How a sink retries: attempts after the first, and exponential backoff between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts after the first one (0 = try once).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The first backoff, doubled after each failed attempt.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// The longest backoff.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// How long one attempt may take.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_retries() -> u32 {
    5
}
fn default_backoff_ms() -> u64 {
    100
}
fn default_max_backoff_ms() -> u64 {
    5_000
}
fn default_timeout_ms() -> u64 {
    5_000
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: default_retries(),
            backoff_ms: default_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            timeout_ms: default_timeout_ms(),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt` (1 = the first retry): `backoff_ms · 2^(attempt-1)`,
    /// at most `max_backoff_ms`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(20);
        Duration::from_millis(
            self.backoff_ms
                .saturating_mul(factor)
                .min(self.max_backoff_ms),
        )
    }

    /// How long one attempt may take.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Where a binding's documents go. `name` is the output a router's decision names; it
/// defaults to the sink's type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SinkSpec {
    /// Publish to the service's MQTT broker.
    Mqtt(MqttSinkSpec),
    /// Publish to the service's NATS server.
    Nats(NatsSinkSpec),
    /// POST to an HTTP endpoint.
    Webhook(WebhookSinkSpec),
    /// Append to a file under the tenant's sink directory.
    File(FileSinkSpec),
    /// Write to the service's standard output.
    Stdout(StdoutSinkSpec),
}

/// An MQTT sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSinkSpec {
    /// The output name (default `mqtt`).
    #[serde(default)]
    pub name: Option<String>,
    /// The output format (default `json`).
    #[serde(default = "json")]
    pub format: OutputFormat,
    /// The topic template, under `<tenant>/`.
    pub topic: String,
    /// 0 or 1 (default 1: the sink has accepted when the broker acknowledged).
    #[serde(default = "qos1")]
    pub qos: u8,
    /// Publish with the retain flag.
    #[serde(default)]
    pub retain: bool,
    /// Retries and backoff.
    #[serde(default)]
    pub retry: RetryPolicy,
}

/// A NATS sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSinkSpec {
    /// The output name (default `nats`).
    #[serde(default)]
    pub name: Option<String>,
    /// The output format (default `json`).
    #[serde(default = "json")]
    pub format: OutputFormat,
    /// The subject template, under `<tenant>.`.
    pub subject: String,
    /// Retries and backoff.
    #[serde(default)]
    pub retry: RetryPolicy,
}

/// An HTTP webhook sink: `POST url` with the encoded document; 2xx is accepted, 4xx other
/// than 408/429 is refused for good, anything else is retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSinkSpec {
    /// The output name (default `webhook`).
    #[serde(default)]
    pub name: Option<String>,
    /// The output format (default `json`).
    #[serde(default = "json")]
    pub format: OutputFormat,
    /// `http://` URL to POST to.
    pub url: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Retries and backoff.
    #[serde(default)]
    pub retry: RetryPolicy,
}

/// A file sink: one record per line (text formats) or length-prefixed (binary formats),
/// appended to `<data dir>/sinks/<tenant>/<path>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkSpec {
    /// The output name (default `file`).
    #[serde(default)]
    pub name: Option<String>,
    /// The output format (default `json`).
    #[serde(default = "json")]
    pub format: OutputFormat,
    /// A relative path without `..`.
    pub path: String,
    /// Retries and backoff.
    #[serde(default)]
    pub retry: RetryPolicy,
}

/// A standard-output sink (one line per document; text formats only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkSpec {
    /// The output name (default `stdout`).
    #[serde(default)]
    pub name: Option<String>,
    /// The output format (default `json`).
    #[serde(default = "json")]
    pub format: OutputFormat,
}

fn json() -> OutputFormat {
    OutputFormat::Json
}
fn qos1() -> u8 {
    1
}

impl SinkSpec {
    /// The output name a router's decision uses for this sink.
    pub fn name(&self) -> &str {
        let (name, kind) = match self {
            SinkSpec::Mqtt(s) => (&s.name, "mqtt"),
            SinkSpec::Nats(s) => (&s.name, "nats"),
            SinkSpec::Webhook(s) => (&s.name, "webhook"),
            SinkSpec::File(s) => (&s.name, "file"),
            SinkSpec::Stdout(s) => (&s.name, "stdout"),
        };
        name.as_deref().unwrap_or(kind)
    }

    /// The format documents are published in.
    pub fn format(&self) -> OutputFormat {
        match self {
            SinkSpec::Mqtt(s) => s.format,
            SinkSpec::Nats(s) => s.format,
            SinkSpec::Webhook(s) => s.format,
            SinkSpec::File(s) => s.format,
            SinkSpec::Stdout(s) => s.format,
        }
    }

    /// How failed attempts are retried.
    pub fn retry(&self) -> RetryPolicy {
        match self {
            SinkSpec::Mqtt(s) => s.retry,
            SinkSpec::Nats(s) => s.retry,
            SinkSpec::Webhook(s) => s.retry,
            SinkSpec::File(s) => s.retry,
            SinkSpec::Stdout(_) => RetryPolicy {
                retries: 0,
                ..RetryPolicy::default()
            },
        }
    }
}

/// A binding's sources and sinks, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BindingIo {
    /// Where messages come from (HTTP ingest needs no entry: every binding has it).
    pub sources: Vec<SourceSpec>,
    /// Where documents go, in the order given.
    pub sinks: Vec<SinkSpec>,
}

impl BindingIo {
    /// The sink whose output name is `name`.
    pub fn sink_index(&self, name: &str) -> Option<usize> {
        self.sinks.iter().position(|s| s.name() == name)
    }
}

fn parse_list<T: serde::de::DeserializeOwned>(
    what: &str,
    value: &serde_json::Value,
) -> Result<Vec<T>, IoConfigError> {
    let items = match value {
        serde_json::Value::Null => return Ok(Vec::new()),
        serde_json::Value::Array(items) => items,
        _ => return Err(IoConfigError::new(what, "must be a list")),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = format!("{what}[{i}]");
            if !item.is_object() {
                return Err(IoConfigError::new(field, "must be an object"));
            }
            serde_path_to_error::deserialize(item).map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." {
                    field
                } else {
                    format!("{field}.{path}")
                };
                IoConfigError::new(field, e.into_inner().to_string())
            })
        })
        .collect()
}

/// Parses and checks the `sources` and `sinks` of a binding of `tenant`.
pub fn parse_binding_io(
    tenant: &str,
    binding: &str,
    sources: &serde_json::Value,
    sinks: &serde_json::Value,
) -> Result<BindingIo, IoConfigError> {
    let sources: Vec<SourceSpec> = parse_list("sources", sources)?;
    let sinks: Vec<SinkSpec> = parse_list("sinks", sinks)?;
    let mqtt_ns = format!("{tenant}/");
    let nats_ns = format!("{tenant}.");
    for (i, source) in sources.iter().enumerate() {
        match source {
            SourceSpec::Mqtt(s) => {
                let field = format!("sources[{i}].topic");
                check_filter(&s.topic).map_err(|m| IoConfigError::new(&field, m))?;
                if !s.topic.starts_with(&mqtt_ns) {
                    return Err(IoConfigError::new(
                        field,
                        format!("a topic of tenant `{tenant}` must start with `{mqtt_ns}`"),
                    ));
                }
                let levels = s.topic.split('/').count();
                match s.device_level() {
                    None => {
                        return Err(IoConfigError::new(
                            format!("sources[{i}].device_id_level"),
                            "the topic has no `+` level; say which level holds the device id",
                        ));
                    }
                    Some(l) if l >= levels && !s.topic.ends_with('#') => {
                        return Err(IoConfigError::new(
                            format!("sources[{i}].device_id_level"),
                            format!("the topic has {levels} levels; level {l} does not exist"),
                        ));
                    }
                    Some(_) => {}
                }
            }
            SourceSpec::Nats(s) => {
                let field = format!("sources[{i}].subject");
                check_subject(&s.subject, true).map_err(|m| IoConfigError::new(&field, m))?;
                if !s.subject.starts_with(&nats_ns) {
                    return Err(IoConfigError::new(
                        field,
                        format!("a subject of tenant `{tenant}` must start with `{nats_ns}`"),
                    ));
                }
                if s.device_token().is_none() {
                    return Err(IoConfigError::new(
                        format!("sources[{i}].device_id_token"),
                        "the subject has no `*` token; say which token holds the device id",
                    ));
                }
            }
        }
    }
    let mut names = BTreeSet::new();
    let probe = TemplateVars {
        tenant,
        binding,
        device: "device",
        port: 1,
        output: "output",
    };
    for (i, sink) in sinks.iter().enumerate() {
        if !names.insert(sink.name().to_string()) {
            return Err(IoConfigError::new(
                format!("sinks[{i}].name"),
                format!(
                    "two sinks are named `{}`; give each a distinct `name`",
                    sink.name()
                ),
            ));
        }
        if crate::topic::check_device_id(sink.name()).is_err() {
            return Err(IoConfigError::new(
                format!("sinks[{i}].name"),
                "a sink name is 1 to 128 characters without `/`, `+`, `#`, `*`, `>`, `.` or spaces",
            ));
        }
        match sink {
            SinkSpec::Mqtt(s) => {
                let field = format!("sinks[{i}].topic");
                let template =
                    Template::parse(&s.topic).map_err(|m| IoConfigError::new(&field, m))?;
                let topic = template.render(&probe);
                if topic.contains(['+', '#']) {
                    return Err(IoConfigError::new(
                        field,
                        "a topic to publish to has no wildcards",
                    ));
                }
                if !topic.starts_with(&mqtt_ns) {
                    return Err(IoConfigError::new(
                        field,
                        format!(
                            "a topic of tenant `{tenant}` must start with `{mqtt_ns}` (or `{{tenant}}/`)"
                        ),
                    ));
                }
                if s.qos > 1 {
                    return Err(IoConfigError::new(
                        format!("sinks[{i}].qos"),
                        "qos must be 0 or 1",
                    ));
                }
            }
            SinkSpec::Nats(s) => {
                let field = format!("sinks[{i}].subject");
                let template =
                    Template::parse(&s.subject).map_err(|m| IoConfigError::new(&field, m))?;
                let subject = template.render(&probe);
                check_subject(&subject, false).map_err(|m| IoConfigError::new(&field, m))?;
                if !subject.starts_with(&nats_ns) {
                    return Err(IoConfigError::new(
                        field,
                        format!(
                            "a subject of tenant `{tenant}` must start with `{nats_ns}` (or `{{tenant}}.`)"
                        ),
                    ));
                }
            }
            SinkSpec::Webhook(s) => {
                let field = format!("sinks[{i}].url");
                if !s.url.starts_with("http://") {
                    return Err(IoConfigError::new(
                        field,
                        "the URL must start with `http://` (this build has no TLS client)",
                    ));
                }
                reqwest::Url::parse(&s.url)
                    .map_err(|e| IoConfigError::new(&field, format!("not a URL: {e}")))?;
            }
            SinkSpec::File(s) => {
                crate::sink::check_relative_path(&s.path)
                    .map_err(|m| IoConfigError::new(format!("sinks[{i}].path"), m))?;
            }
            SinkSpec::Stdout(s) => {
                if matches!(s.format, OutputFormat::Cbor | OutputFormat::MessagePack) {
                    return Err(IoConfigError::new(
                        format!("sinks[{i}].format"),
                        "stdout takes a text format (json, senml, influx)",
                    ));
                }
            }
        }
    }
    Ok(BindingIo { sources, sinks })
}

/// Checks a NATS subject (`wildcards`: whether `*` and `>` are allowed).
pub fn check_subject(subject: &str, wildcards: bool) -> Result<(), String> {
    if subject.is_empty() {
        return Err("the subject is empty".into());
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Err(format!("token {i} of `{subject}` is empty"));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "token {i} of `{subject}` contains a space or control character"
            ));
        }
        let wild = *token == "*" || *token == ">";
        if wild && !wildcards {
            return Err(format!(
                "`{subject}` has a wildcard; a subject to publish to has none"
            ));
        }
        if *token == ">" && i + 1 != tokens.len() {
            return Err(format!("`>` must be the last token of `{subject}`"));
        }
        if !wild && token.contains(['*', '>']) {
            return Err(format!("`*` and `>` must be whole tokens in `{subject}`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(
        sources: serde_json::Value,
        sinks: serde_json::Value,
    ) -> Result<BindingIo, IoConfigError> {
        parse_binding_io("acme", "farm", &sources, &sinks)
    }

    #[test]
    fn a_full_binding_parses_with_defaults() {
        let io = parse(
            json!([{ "type": "mqtt", "topic": "acme/devices/+/up" },
                   { "type": "nats", "subject": "acme.up.*" }]),
            json!([{ "type": "mqtt", "topic": "{tenant}/decoded/{device}" },
                   { "type": "webhook", "name": "hook", "url": "http://127.0.0.1:1/x", "format": "senml",
                     "retry": { "retries": 2 } },
                   { "type": "file", "path": "out/decoded.jsonl", "format": "influx" },
                   { "type": "stdout" }]),
        )
        .expect("parse");
        assert_eq!(io.sources.len(), 2);
        assert_eq!(io.sinks[0].name(), "mqtt");
        assert_eq!(io.sinks[0].format(), OutputFormat::Json);
        assert_eq!(io.sinks[1].name(), "hook");
        assert_eq!(io.sinks[1].retry().retries, 2);
        assert_eq!(io.sinks[1].retry().backoff_ms, 100);
        assert_eq!(io.sink_index("stdout"), Some(3));
        let SourceSpec::Mqtt(mqtt) = &io.sources[0] else {
            panic!("mqtt source expected")
        };
        assert_eq!(
            mqtt.identify("acme/devices/d-1/up"),
            Ok(("d-1".to_string(), 0))
        );
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse(
            json!([]),
            json!([{ "type": "mqtt", "topic": "acme/x", "qos": 2 }]),
        )
        .expect_err("qos 2");
        assert_eq!(err.field, "sinks[0].qos");
        let err = parse(
            json!([]),
            json!([{ "type": "mqtt", "topic": "acme/x", "colour": 2 }]),
        )
        .expect_err("unknown field");
        assert_eq!(err.field, "sinks[0]");
        assert!(err.message.contains("colour"), "{err}");
        let err = parse(json!([]), json!([{ "type": "carrier-pigeon" }])).expect_err("type");
        assert_eq!(err.field, "sinks[0].type");
        assert!(err.message.contains("carrier-pigeon"), "{err}");
        let err = parse(
            json!([]),
            json!([{ "type": "file", "path": "x", "format": "yaml" }]),
        )
        .expect_err("format");
        assert!(err.message.contains("yaml"), "{err}");
        let err = parse(json!({}), json!([])).expect_err("not a list");
        assert_eq!(err.field, "sources");
        let err = parse(
            json!([]),
            json!([{ "type": "stdout" }, { "type": "stdout" }]),
        )
        .expect_err("duplicate");
        assert_eq!(err.field, "sinks[1].name");
        let err = parse(
            json!([]),
            json!([{ "type": "file", "path": "../etc/passwd" }]),
        )
        .expect_err("escape");
        assert_eq!(err.field, "sinks[0].path");
        let err = parse(
            json!([]),
            json!([{ "type": "mqtt", "topic": "acme/{nope}" }]),
        )
        .expect_err("placeholder");
        assert_eq!(err.field, "sinks[0].topic");
    }

    #[test]
    fn a_tenant_cannot_touch_another_tenants_topics() {
        let err = parse(
            json!([{ "type": "mqtt", "topic": "globex/+/up" }]),
            json!([]),
        )
        .expect_err("foreign source");
        assert_eq!(err.field, "sources[0].topic");
        assert!(err.message.contains("acme/"), "{err}");
        let err = parse(json!([{ "type": "mqtt", "topic": "#" }]), json!([])).expect_err("all");
        assert_eq!(err.field, "sources[0].topic");
        let err = parse(
            json!([]),
            json!([{ "type": "mqtt", "topic": "globex/out" }]),
        )
        .expect_err("foreign sink");
        assert_eq!(err.field, "sinks[0].topic");
        let err = parse(
            json!([]),
            json!([{ "type": "nats", "subject": "globex.out" }]),
        )
        .expect_err("foreign subject");
        assert_eq!(err.field, "sinks[0].subject");
    }

    #[test]
    fn a_filter_without_a_device_level_must_say_where_the_device_is() {
        let err = parse(json!([{ "type": "mqtt", "topic": "acme/up" }]), json!([]))
            .expect_err("no device");
        assert_eq!(err.field, "sources[0].device_id_level");
        let io = parse(
            json!([{ "type": "mqtt", "topic": "acme/#", "device_id_level": 1, "port_level": 2 }]),
            json!([]),
        )
        .expect("explicit level");
        let SourceSpec::Mqtt(mqtt) = &io.sources[0] else {
            panic!("mqtt source expected")
        };
        assert_eq!(mqtt.identify("acme/d9/12"), Ok(("d9".to_string(), 12)));
        assert!(mqtt.identify("acme/d9/x").is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            retries: 10,
            backoff_ms: 100,
            max_backoff_ms: 1_000,
            timeout_ms: 1,
        };
        assert_eq!(policy.backoff(1), Duration::from_millis(100));
        assert_eq!(policy.backoff(2), Duration::from_millis(200));
        assert_eq!(policy.backoff(4), Duration::from_millis(800));
        assert_eq!(policy.backoff(5), Duration::from_millis(1_000));
        assert_eq!(policy.backoff(60), Duration::from_millis(1_000));
    }
}
