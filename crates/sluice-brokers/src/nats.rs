//! A NATS test client whose subscriptions feed one queue of received messages.

use crate::ProbeError;
use futures_util::StreamExt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

/// How long a [`NatsProbe::flush`] round trip may take.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(10);

/// A NATS client for tests. Messages from all of its subscriptions arrive in one queue, read
/// with [`NatsProbe::next_message`] or [`NatsProbe::collect`].
#[derive(Debug)]
pub struct NatsProbe {
    client: async_nats::Client,
    incoming_tx: mpsc::UnboundedSender<(String, Vec<u8>)>,
    incoming: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    forwarders: Mutex<Vec<JoinHandle<()>>>,
    barrier: tokio::sync::Mutex<Barrier>,
}

/// A private inbox the probe publishes numbered markers to: when a marker comes back, the
/// server has processed everything this connection sent before it.
#[derive(Debug)]
struct Barrier {
    subject: String,
    subscriber: async_nats::Subscriber,
    next_marker: u64,
}

impl NatsProbe {
    /// Connects to `url` (`nats://host:port`).
    pub async fn connect(url: &str) -> Result<Self, ProbeError> {
        let client = async_nats::connect(url)
            .await
            .map_err(|source| ProbeError::NatsConnect {
                url: url.to_string(),
                source,
            })?;
        let subject = client.new_inbox();
        let subscriber = client.subscribe(subject.clone()).await.map_err(|source| {
            ProbeError::NatsSubscribe {
                subject: subject.clone(),
                source,
            }
        })?;
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        Ok(Self {
            client,
            incoming_tx,
            incoming,
            forwarders: Mutex::new(Vec::new()),
            barrier: tokio::sync::Mutex::new(Barrier {
                subject,
                subscriber,
                next_marker: 0,
            }),
        })
    }

    /// The underlying client, for anything the probe does not cover (JetStream, requests).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Subscribes to `subject` (wildcards allowed) and returns once the server has registered
    /// the subscription, so messages published afterwards are received.
    pub async fn subscribe(&self, subject: &str) -> Result<(), ProbeError> {
        let mut subscriber =
            self.client
                .subscribe(subject.to_string())
                .await
                .map_err(|source| ProbeError::NatsSubscribe {
                    subject: subject.to_string(),
                    source,
                })?;
        self.flush().await?;
        let incoming = self.incoming_tx.clone();
        let forwarder = tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                if incoming
                    .send((message.subject.to_string(), message.payload.to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        });
        self.forwarders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(forwarder);
        Ok(())
    }

    /// Publishes one message and flushes, so the server has processed it when this returns.
    pub async fn publish(
        &self,
        subject: &str,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), ProbeError> {
        self.client
            .publish(subject.to_string(), payload.into().into())
            .await
            .map_err(|source| ProbeError::NatsPublish {
                subject: subject.to_string(),
                source,
            })?;
        self.flush().await
    }

    /// Waits until the server has processed everything this probe sent so far: subscriptions
    /// are registered and publishes routed. (The client's own `flush` only empties the socket
    /// buffer, so this sends a marker through the server and waits for it to come back.)
    pub async fn flush(&self) -> Result<(), ProbeError> {
        let mut barrier = self.barrier.lock().await;
        let marker = barrier.next_marker.to_string().into_bytes();
        barrier.next_marker += 1;
        self.client
            .publish(barrier.subject.clone(), marker.clone().into())
            .await
            .map_err(|source| ProbeError::NatsPublish {
                subject: barrier.subject.clone(),
                source,
            })?;
        self.client.flush().await.map_err(ProbeError::NatsFlush)?;
        let deadline = Instant::now() + ROUND_TRIP_TIMEOUT;
        loop {
            // Markers of an earlier, abandoned flush may still arrive first: skip them.
            match timeout_at(deadline, barrier.subscriber.next()).await {
                Ok(Some(message)) if message.payload.as_ref() == marker.as_slice() => {
                    return Ok(());
                }
                Ok(Some(_)) => {}
                Ok(None) => return Err(ProbeError::NatsClosed),
                Err(_) => {
                    return Err(ProbeError::AckTimeout {
                        what: "NATS round trip",
                        timeout_ms: ROUND_TRIP_TIMEOUT.as_millis(),
                    });
                }
            }
        }
    }

    /// The next received message as `(subject, payload)`, or `None` if none arrives within
    /// `timeout`.
    pub async fn next_message(&mut self, timeout: Duration) -> Option<(String, Vec<u8>)> {
        tokio::time::timeout(timeout, self.incoming.recv())
            .await
            .ok()
            .flatten()
    }

    /// Up to `n` received messages, waiting at most `timeout` in total; fewer means the rest
    /// did not arrive in time.
    pub async fn collect(&mut self, n: usize, timeout: Duration) -> Vec<(String, Vec<u8>)> {
        let deadline = Instant::now() + timeout;
        let mut messages = Vec::with_capacity(n.min(65_536));
        while messages.len() < n {
            match timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(message)) => messages.push(message),
                Ok(None) | Err(_) => break,
            }
        }
        messages
    }
}

impl Drop for NatsProbe {
    fn drop(&mut self) {
        let forwarders = self
            .forwarders
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for forwarder in forwarders.drain(..) {
            forwarder.abort();
        }
    }
}
