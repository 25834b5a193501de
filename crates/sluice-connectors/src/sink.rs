//! Sinks: open a [`SinkSpec`] against the service's connections and deliver encoded
//! documents with retries.

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use sluice_formats::OutputFormat;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Mutex;

use crate::mqtt::MqttPublisher;
use crate::nats::NatsPublisher;
use crate::spec::{RetryPolicy, SinkSpec};
use crate::topic::{Template, TemplateVars};

/// What the sinks of every binding share: the broker connections, an HTTP client, and the
/// directory file sinks write under.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// The MQTT publisher, when the service has a broker.
    pub mqtt: Option<MqttPublisher>,
    /// The NATS connection, when the service has one.
    pub nats: Option<NatsPublisher>,
    /// The HTTP client of webhook sinks.
    pub http: reqwest::Client,
    /// File sinks write under `<sink_dir>/<tenant>/`.
    pub sink_dir: PathBuf,
}

impl SinkContext {
    /// A context with no brokers, writing files under `sink_dir`.
    pub fn new(sink_dir: impl Into<PathBuf>) -> Self {
        Self {
            mqtt: None,
            nats: None,
            http: reqwest::Client::new(),
            sink_dir: sink_dir.into(),
        }
    }
}

/// One failed delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Worth trying again (timeout, connection refused, HTTP 5xx/408/429).
    #[error("{0}")]
    Transient(String),
    /// Will fail again the same way (HTTP 4xx, a format the sink cannot carry).
    #[error("{0}")]
    Permanent(String),
}

/// A sink cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sink `{sink}`: {reason}")]
pub struct SinkSetupError {
    /// The sink's output name.
    pub sink: String,
    /// Why.
    pub reason: String,
}

/// A delivery that failed for good: the last error and how many attempts were made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sink `{sink}` failed after {attempts} attempt(s): {error}")]
pub struct DeliveryError {
    /// The sink's output name.
    pub sink: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error.
    pub error: SinkError,
}

enum Target {
    Mqtt {
        publisher: MqttPublisher,
        topic: Template,
        qos: u8,
        retain: bool,
    },
    Nats {
        publisher: NatsPublisher,
        subject: Template,
    },
    Webhook {
        client: reqwest::Client,
        url: reqwest::Url,
        headers: Vec<(String, String)>,
    },
    File {
        path: PathBuf,
        file: Mutex<Option<tokio::fs::File>>,
    },
    Stdout,
}

/// An opened sink.
pub struct Sink {
    name: String,
    format: OutputFormat,
    retry: RetryPolicy,
    target: Target,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("name", &self.name)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// Checks a file sink's path: relative, not empty, no `..`.
pub fn check_relative_path(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err("the path must be relative and must not contain `..`".into());
    }
    Ok(())
}

impl Sink {
    /// Opens `spec` for a binding of `tenant`.
    pub fn open(
        spec: &SinkSpec,
        tenant: &str,
        ctx: &SinkContext,
    ) -> Result<Arc<Self>, SinkSetupError> {
        let name = spec.name().to_string();
        let fail = |reason: String| SinkSetupError {
            sink: name.clone(),
            reason,
        };
        let target = match spec {
            SinkSpec::Mqtt(s) => Target::Mqtt {
                publisher: ctx.mqtt.clone().ok_or_else(|| {
                    fail("the service has no MQTT broker configured ([mqtt] url)".into())
                })?,
                topic: Template::parse(&s.topic).map_err(fail)?,
                qos: s.qos,
                retain: s.retain,
            },
            SinkSpec::Nats(s) => Target::Nats {
                publisher: ctx.nats.clone().ok_or_else(|| {
                    fail("the service has no NATS server configured ([nats] url)".into())
                })?,
                subject: Template::parse(&s.subject).map_err(fail)?,
            },
            SinkSpec::Webhook(s) => Target::Webhook {
                client: ctx.http.clone(),
                url: reqwest::Url::parse(&s.url).map_err(|e| fail(format!("bad URL: {e}")))?,
                headers: s
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            },
            SinkSpec::File(s) => {
                check_relative_path(&s.path).map_err(fail)?;
                Target::File {
                    path: ctx.sink_dir.join(tenant).join(&s.path),
                    file: Mutex::new(None),
                }
            }
            SinkSpec::Stdout(_) => Target::Stdout,
        };
        Ok(Arc::new(Self {
            name,
            format: spec.format(),
            retry: spec.retry(),
            target,
        }))
    }

    /// The output name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The format this sink publishes.
    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// The sink's type: `mqtt`, `nats`, `webhook`, `file` or `stdout`.
    pub fn kind(&self) -> &'static str {
        match self.target {
            Target::Mqtt { .. } => "mqtt",
            Target::Nats { .. } => "nats",
            Target::Webhook { .. } => "webhook",
            Target::File { .. } => "file",
            Target::Stdout => "stdout",
        }
    }

    /// Delivers `bytes`, retrying transient failures with exponential backoff. Returns the
    /// number of attempts it took.
    pub async fn deliver(
        &self,
        vars: &TemplateVars<'_>,
        bytes: &[u8],
    ) -> Result<u32, DeliveryError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = tokio::time::timeout(self.retry.timeout(), self.send_once(vars, bytes))
                .await
                .unwrap_or_else(|_| {
                    Err(SinkError::Transient(format!(
                        "no answer within {} ms",
                        self.retry.timeout_ms
                    )))
                });
            match result {
                Ok(()) => return Ok(attempt),
                Err(error @ SinkError::Permanent(_)) => {
                    return Err(DeliveryError {
                        sink: self.name.clone(),
                        attempts: attempt,
                        error,
                    });
                }
                Err(error) if attempt > self.retry.retries => {
                    return Err(DeliveryError {
                        sink: self.name.clone(),
                        attempts: attempt,
                        error,
                    });
                }
                Err(error) => {
                    tracing::debug!(sink = %self.name, attempt, %error, "sink attempt failed; retrying");
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                }
            }
        }
    }

    async fn send_once(&self, vars: &TemplateVars<'_>, bytes: &[u8]) -> Result<(), SinkError> {
        match &self.target {
            Target::Mqtt {
                publisher,
                topic,
                qos,
                retain,
            } => publisher
                .publish(
                    topic.render(vars),
                    bytes.to_vec(),
                    *qos,
                    *retain,
                    self.retry.timeout(),
                )
                .await
                .map_err(|e| SinkError::Transient(e.to_string())),
            Target::Nats { publisher, subject } => publisher
                .publish(
                    subject.render(vars),
                    bytes.to_vec(),
                    self.format.content_type(),
                )
                .await
                .map_err(|e| SinkError::Transient(e.to_string())),
            Target::Webhook {
                client,
                url,
                headers,
            } => {
                let mut request = client
                    .post(url.clone())
                    .header("content-type", self.format.content_type())
                    .header("x-sluice-tenant", vars.tenant)
                    .header("x-sluice-binding", vars.binding)
                    .header("x-sluice-device", vars.device)
                    .body(bytes.to_vec());
                for (k, v) in headers {
                    request = request.header(k, v);
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| SinkError::Transient(format!("POST {url}: {e}")))?;
                let status = response.status();
                if status.is_success() {
                    Ok(())
                } else if status.is_client_error()
                    && status != reqwest::StatusCode::REQUEST_TIMEOUT
                    && status != reqwest::StatusCode::TOO_MANY_REQUESTS
                {
                    Err(SinkError::Permanent(format!("POST {url}: HTTP {status}")))
                } else {
                    Err(SinkError::Transient(format!("POST {url}: HTTP {status}")))
                }
            }
            Target::File { path, file } => {
                let mut guard = file.lock().await;
                if guard.is_none() {
                    if let Some(dir) = path.parent() {
                        tokio::fs::create_dir_all(dir).await.map_err(|e| {
                            SinkError::Transient(format!("creating {}: {e}", dir.display()))
                        })?;
                    }
                    let opened = tokio::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .await
                        .map_err(|e| {
                            SinkError::Transient(format!("opening {}: {e}", path.display()))
                        })?;
                    *guard = Some(opened);
                }
                let Some(f) = guard.as_mut() else {
                    return Err(SinkError::Transient("file not open".into()));
                };
                let record = frame(self.format, bytes);
                let written = async {
                    f.write_all(&record).await?;
                    f.flush().await
                }
                .await;
                if let Err(e) = written {
                    *guard = None;
                    return Err(SinkError::Transient(format!(
                        "writing {}: {e}",
                        path.display()
                    )));
                }
                Ok(())
            }
            Target::Stdout => {
                let record = frame(self.format, bytes);
                let mut out = std::io::stdout().lock();
                out.write_all(&record)
                    .and_then(|()| out.flush())
                    .map_err(|e| SinkError::Transient(format!("writing to stdout: {e}")))
            }
        }
    }
}

/// A record as a file or stream holds it: text formats one per line, binary formats with a
/// 4-byte big-endian length before them.
pub fn frame(format: OutputFormat, bytes: &[u8]) -> Vec<u8> {
    match format {
        OutputFormat::Cbor | OutputFormat::MessagePack => {
            let mut out = Vec::with_capacity(bytes.len() + 4);
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
            out
        }
        _ => {
            let mut out = bytes.to_vec();
            if out.last() != Some(&b'\n') {
                out.push(b'\n');
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{FileSinkSpec, WebhookSinkSpec};

    fn vars() -> TemplateVars<'static> {
        TemplateVars {
            tenant: "acme",
            binding: "farm",
            device: "d1",
            port: 1,
            output: "file",
        }
    }

    #[tokio::test]
    async fn a_file_sink_appends_one_line_per_record_under_the_tenant() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = SinkContext::new(dir.path());
        let spec = SinkSpec::File(FileSinkSpec {
            name: None,
            format: OutputFormat::Json,
            path: "out/decoded.jsonl".into(),
            retry: RetryPolicy::default(),
        });
        let sink = Sink::open(&spec, "acme", &ctx).expect("open");
        assert_eq!(sink.deliver(&vars(), br#"{"a":1}"#).await, Ok(1));
        assert_eq!(sink.deliver(&vars(), br#"{"a":2}"#).await, Ok(1));
        let text =
            std::fs::read_to_string(dir.path().join("acme/out/decoded.jsonl")).expect("read");
        assert_eq!(text, "{\"a\":1}\n{\"a\":2}\n");
    }

    #[tokio::test]
    async fn a_webhook_that_refuses_is_retried_with_backoff_then_reported() {
        // A port nothing listens on: every attempt is refused.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let ctx = SinkContext::new("/nonexistent");
        let spec = SinkSpec::Webhook(WebhookSinkSpec {
            name: Some("hook".into()),
            format: OutputFormat::Json,
            url: format!("http://127.0.0.1:{port}/x"),
            headers: Default::default(),
            retry: RetryPolicy {
                retries: 2,
                backoff_ms: 10,
                max_backoff_ms: 20,
                timeout_ms: 1_000,
            },
        });
        let sink = Sink::open(&spec, "acme", &ctx).expect("open");
        let started = std::time::Instant::now();
        let err = sink.deliver(&vars(), b"{}").await.expect_err("refused");
        assert_eq!(err.attempts, 3);
        assert_eq!(err.sink, "hook");
        assert!(matches!(err.error, SinkError::Transient(_)), "{err}");
        assert!(started.elapsed() >= std::time::Duration::from_millis(30));
    }

    #[test]
    fn binary_records_are_length_prefixed() {
        assert_eq!(frame(OutputFormat::Cbor, &[1, 2]), vec![0, 0, 0, 2, 1, 2]);
        assert_eq!(frame(OutputFormat::Json, b"{}"), b"{}\n".to_vec());
    }

    #[test]
    fn mqtt_sinks_need_a_broker() {
        let ctx = SinkContext::new("/tmp");
        let spec: SinkSpec =
            serde_json::from_value(serde_json::json!({"type": "mqtt", "topic": "acme/x"}))
                .expect("spec");
        let err = Sink::open(&spec, "acme", &ctx).expect_err("no broker");
        assert!(err.reason.contains("[mqtt]"), "{err}");
    }
}
