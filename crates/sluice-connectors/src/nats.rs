//! NATS connections (core NATS): a publisher for sinks and subject subscriptions for
//! sources.
//!
//! Core NATS delivers at most once: a message received while the service is down is not
//! redelivered. Durable NATS ingest is JetStream's job (a stream plus a durable consumer),
//! the route to scale-out described in `docs/architecture.md`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

/// How to reach the NATS server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// `nats://host:port`.
    pub url: String,
}

/// A NATS operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nats: {0}")]
pub struct NatsError(pub String);

/// A message received on a subscribed subject.
#[derive(Debug)]
pub struct NatsMessage {
    /// The subject filter it matched (as subscribed).
    pub filter: String,
    /// The subject it was published on.
    pub subject: String,
    /// The payload.
    pub payload: bytes::Bytes,
}

/// One connection, used for publishing and subscribing.
#[derive(Clone)]
pub struct NatsPublisher {
    client: async_nats::Client,
    subscriptions: Arc<Mutex<HashMap<String, JoinHandle<()>>>>,
}

impl std::fmt::Debug for NatsPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsPublisher").finish_non_exhaustive()
    }
}

impl NatsPublisher {
    /// Connects to `settings.url`, retrying in the background if the server is not up yet.
    pub async fn connect(settings: &NatsSettings) -> Result<Self, NatsError> {
        if !settings.url.starts_with("nats://") {
            return Err(NatsError(format!(
                "nats.url `{}` must start with `nats://`",
                settings.url
            )));
        }
        let client = async_nats::ConnectOptions::new()
            .name("sluice")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(settings.url.as_str())
            .await
            .map_err(|e| NatsError(format!("connecting to {}: {e}", settings.url)))?;
        Ok(Self {
            client,
            subscriptions: Arc::default(),
        })
    }

    /// Whether the connection is up.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Publishes `payload` on `subject` and waits until the server has it (a flush).
    pub async fn publish(
        &self,
        subject: String,
        payload: Vec<u8>,
        content_type: &str,
    ) -> Result<(), NatsError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Content-Type", content_type);
        self.client
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(|e| NatsError(e.to_string()))?;
        self.client
            .flush()
            .await
            .map_err(|e| NatsError(e.to_string()))
    }

    /// Sends every message on `filter` to `sink` (once per filter; a second call is a no-op).
    pub async fn subscribe(
        &self,
        filter: &str,
        sink: mpsc::Sender<NatsMessage>,
    ) -> Result<(), NatsError> {
        let mut subs = self.subscriptions.lock().await;
        if subs.contains_key(filter) {
            return Ok(());
        }
        let mut subscriber = self
            .client
            .subscribe(filter.to_string())
            .await
            .map_err(|e| NatsError(e.to_string()))?;
        let name = filter.to_string();
        let task = tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                let message = NatsMessage {
                    filter: name.clone(),
                    subject: message.subject.to_string(),
                    payload: message.payload,
                };
                if sink.send(message).await.is_err() {
                    return;
                }
            }
        });
        subs.insert(filter.to_string(), task);
        Ok(())
    }

    /// Stops the subscription on `filter`.
    pub async fn unsubscribe(&self, filter: &str) {
        if let Some(task) = self.subscriptions.lock().await.remove(filter) {
            task.abort();
        }
    }

    /// Stops every subscription and flushes what was published.
    pub async fn close(&self) {
        for (_, task) in self.subscriptions.lock().await.drain() {
            task.abort();
        }
        let _ = self.client.flush().await;
    }
}

/// Whether the NATS subject `subject` matches `filter` (`*` one token, `>` the rest).
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for part in filter.split('.') {
        match part {
            ">" => return tokens.next().is_some(),
            "*" => {
                if tokens.next().is_none() {
                    return false;
                }
            }
            literal => {
                if tokens.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_like_nats() {
        assert!(subject_matches("acme.up.*", "acme.up.d1"));
        assert!(!subject_matches("acme.up.*", "acme.up.d1.x"));
        assert!(subject_matches("acme.>", "acme.up.d1"));
        assert!(!subject_matches("acme.>", "acme"));
    }
}
