//! MQTT connections: a subscriber that holds each QoS 1 message unacknowledged until the
//! pipeline has settled it, and a publisher that reports a publish as accepted only when the
//! broker acknowledged it.
//!
//! The two are separate connections on purpose: the subscriber stops reading when the
//! pipeline is full (backpressure reaches the broker through TCP), and the publisher's
//! acknowledgements must keep flowing while it does.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// How to reach the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSettings {
    /// `mqtt://host:port` (port 1883 when left out).
    pub url: String,
    /// The client id prefix: the subscriber is `<id>-in`, the publisher `<id>-out`. A fixed
    /// id with a persistent session is what lets the broker redeliver unacknowledged
    /// messages after a restart.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// User name, if the broker wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password, if the broker wants one.
    #[serde(default)]
    pub password: Option<String>,
    /// Keep-alive interval in seconds.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
    /// How many QoS 1 publishes the publisher keeps unacknowledged at once.
    #[serde(default = "default_inflight")]
    pub inflight: u16,
}

fn default_client_id() -> String {
    "sluice".into()
}
fn default_keep_alive() -> u64 {
    30
}
fn default_inflight() -> u16 {
    256
}

/// A broker setting is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mqtt.url `{url}`: {reason}")]
pub struct MqttUrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

impl MqttSettings {
    /// Settings for `url` with every default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            client_id: default_client_id(),
            username: None,
            password: None,
            keep_alive_s: default_keep_alive(),
            inflight: default_inflight(),
        }
    }

    /// The host and port of [`MqttSettings::url`].
    pub fn host_port(&self) -> Result<(String, u16), MqttUrlError> {
        let err = |reason: &str| MqttUrlError {
            url: self.url.clone(),
            reason: reason.to_string(),
        };
        let rest = self
            .url
            .strip_prefix("mqtt://")
            .or_else(|| self.url.strip_prefix("tcp://"))
            .ok_or_else(|| err("must start with `mqtt://` (TLS brokers are not supported yet)"))?;
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(err("expected `mqtt://host:port`"));
        }
        match rest.rsplit_once(':') {
            Some((host, port)) => {
                let port = port.parse().map_err(|_| err("the port is not a number"))?;
                Ok((host.to_string(), port))
            }
            None => Ok((rest.to_string(), 1883)),
        }
    }

    fn options(&self, suffix: &str, clean: bool) -> Result<MqttOptions, MqttUrlError> {
        let (host, port) = self.host_port()?;
        let mut options = MqttOptions::new(format!("{}-{suffix}", self.client_id), host, port);
        options
            .set_keep_alive(Duration::from_secs(self.keep_alive_s.max(5)))
            .set_clean_session(clean)
            .set_inflight(self.inflight.max(1))
            .set_max_packet_size(1 << 20, 1 << 20);
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            options.set_credentials(user.clone(), password.clone());
        }
        Ok(options)
    }
}

/// Settles one received message with the broker: [`MqttAck::ack`] sends the PUBACK. A
/// message whose `MqttAck` is dropped unsent stays unacknowledged and the broker redelivers
/// it to the next session.
#[derive(Debug)]
pub struct MqttAck {
    client: AsyncClient,
    publish: Publish,
}

impl MqttAck {
    /// Acknowledges the message to the broker.
    pub fn ack(self) {
        if self.client.try_ack(&self.publish).is_err() {
            // The request queue is full: wait for room off the caller's path.
            tokio::spawn(async move {
                let _ = self.client.ack(&self.publish).await;
            });
        }
    }
}

/// A message the subscriber received.
#[derive(Debug)]
pub struct MqttMessage {
    /// The topic it was published on.
    pub topic: String,
    /// The payload.
    pub payload: bytes::Bytes,
    /// Present for QoS 1 messages: acknowledge once settled.
    pub ack: Option<MqttAck>,
}

/// The subscribing connection. Received messages go to the channel given to
/// [`MqttSubscriber::start`]; when that channel is full the connection stops reading.
#[derive(Debug)]
pub struct MqttSubscriber {
    client: AsyncClient,
    filters: Arc<std::sync::Mutex<BTreeSet<String>>>,
    connected: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MqttSubscriber {
    /// Connects (in the background, retrying) with a persistent session and sends every
    /// message to `sink`.
    pub fn start(
        settings: &MqttSettings,
        sink: mpsc::Sender<MqttMessage>,
    ) -> Result<Self, MqttUrlError> {
        let mut options = settings.options("in", false)?;
        options.set_manual_acks(true);
        let (client, eventloop) = AsyncClient::new(options, 1024);
        let filters = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
        let connected = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(subscriber_loop(
            eventloop,
            client.clone(),
            filters.clone(),
            connected.clone(),
            sink,
            stopped,
        ));
        Ok(Self {
            client,
            filters,
            connected,
            stop,
            task,
        })
    }

    /// Subscribes to `filter` (QoS 1) now and after every reconnect.
    pub async fn subscribe(&self, filter: &str) {
        let new = self
            .filters
            .lock()
            .map(|mut f| f.insert(filter.to_string()))
            .unwrap_or(false);
        if new {
            let _ = self.client.subscribe(filter, QoS::AtLeastOnce).await;
        }
    }

    /// Stops receiving messages on `filter`.
    pub async fn unsubscribe(&self, filter: &str) {
        let removed = self
            .filters
            .lock()
            .map(|mut f| f.remove(filter))
            .unwrap_or(false);
        if removed {
            let _ = self.client.unsubscribe(filter).await;
        }
    }

    /// The filters subscribed to.
    pub fn filters(&self) -> Vec<String> {
        self.filters
            .lock()
            .map(|f| f.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether the connection is up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Stops reading new messages (the session and its unacknowledged messages stay with the
    /// broker). Acknowledgements already requested are still sent until [`Self::close`].
    pub fn pause_intake(&self) {
        let _ = self.stop.send(true);
    }

    /// Sends the pending acknowledgements, disconnects and waits for the connection to end.
    pub async fn close(self) {
        let _ = self.stop.send(true);
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

async fn subscriber_loop(
    mut eventloop: EventLoop,
    client: AsyncClient,
    filters: Arc<std::sync::Mutex<BTreeSet<String>>>,
    connected: Arc<AtomicBool>,
    sink: mpsc::Sender<MqttMessage>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        let event = eventloop.poll().await;
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                failures = 0;
                connected.store(true, Ordering::Relaxed);
                tracing::info!("mqtt subscriber connected");
                let topics: Vec<String> = filters
                    .lock()
                    .map(|f| f.iter().cloned().collect())
                    .unwrap_or_default();
                for topic in topics {
                    let _ = client.try_subscribe(topic, QoS::AtLeastOnce);
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if *stopped.borrow() {
                    // Shutting down: leave it unacknowledged; the broker redelivers it.
                    continue;
                }
                let ack = (publish.qos != QoS::AtMostOnce).then(|| MqttAck {
                    client: client.clone(),
                    publish: publish.clone(),
                });
                let message = MqttMessage {
                    topic: publish.topic.clone(),
                    payload: publish.payload.clone(),
                    ack,
                };
                tokio::select! {
                    sent = sink.send(message) => {
                        if sent.is_err() {
                            return;
                        }
                    }
                    _ = stopped.changed() => {}
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                connected.store(false, Ordering::Relaxed);
                // Let the DISCONNECT reach the socket, then end.
                let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                connected.store(false, Ordering::Relaxed);
                if *stopped.borrow() && sink.is_closed() {
                    return;
                }
                failures = failures.saturating_add(1);
                let wait = Duration::from_millis(100u64 << failures.min(6));
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "mqtt subscriber connection failed");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Waiters of QoS 1 publishes: first in the order the requests were queued, then by packet
/// id once the event loop has sent them.
#[derive(Default)]
struct Pending {
    unsent: VecDeque<oneshot::Sender<()>>,
    by_pkid: HashMap<u16, oneshot::Sender<()>>,
}

/// The publishing connection.
#[derive(Clone)]
pub struct MqttPublisher {
    client: AsyncClient,
    pending: Arc<std::sync::Mutex<Pending>>,
    order: Arc<Mutex<()>>,
    connected: Arc<AtomicBool>,
}

impl std::fmt::Debug for MqttPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttPublisher").finish_non_exhaustive()
    }
}

/// A publish failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The broker did not acknowledge within the time given.
    #[error("the broker did not acknowledge within {0:?}")]
    Timeout(Duration),
    /// The connection task has ended.
    #[error("the MQTT publisher is closed")]
    Closed,
}

impl MqttPublisher {
    /// Connects (in the background, retrying) with a persistent session, so publishes not
    /// yet acknowledged are resent after a reconnect.
    pub fn start(settings: &MqttSettings) -> Result<Self, MqttUrlError> {
        let options = settings.options("out", false)?;
        let (client, eventloop) = AsyncClient::new(options, 1024);
        let publisher = Self {
            client,
            pending: Arc::default(),
            order: Arc::default(),
            connected: Arc::default(),
        };
        tokio::spawn(publisher_loop(
            eventloop,
            publisher.pending.clone(),
            publisher.connected.clone(),
        ));
        Ok(publisher)
    }

    /// Whether the connection is up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Publishes `payload` on `topic`; with QoS 1, returns once the broker acknowledged it.
    pub async fn publish(
        &self,
        topic: String,
        payload: Vec<u8>,
        qos: u8,
        retain: bool,
        timeout: Duration,
    ) -> Result<(), PublishError> {
        if qos == 0 {
            return self
                .client
                .publish(topic, QoS::AtMostOnce, retain, payload)
                .await
                .map_err(|_| PublishError::Closed);
        }
        let (tx, rx) = oneshot::channel();
        let queued = async {
            // Queue the waiter and the request in the same order.
            let _order = self.order.lock().await;
            if let Ok(mut p) = self.pending.lock() {
                p.unsent.push_back(tx);
            }
            self.client
                .publish(topic, QoS::AtLeastOnce, retain, payload)
                .await
        };
        match tokio::time::timeout(timeout, async {
            queued.await.map_err(|_| PublishError::Closed)?;
            rx.await.map_err(|_| PublishError::Closed)
        })
        .await
        {
            Ok(result) => result,
            Err(_) => Err(PublishError::Timeout(timeout)),
        }
    }

    /// Disconnects after the queued requests.
    pub async fn close(&self) {
        let _ = self.client.disconnect().await;
    }
}

async fn publisher_loop(
    mut eventloop: EventLoop,
    pending: Arc<std::sync::Mutex<Pending>>,
    connected: Arc<AtomicBool>,
) {
    let mut failures = 0u32;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                failures = 0;
                connected.store(true, Ordering::Relaxed);
                tracing::info!("mqtt publisher connected");
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => {
                if let Ok(mut p) = pending.lock()
                    && !p.by_pkid.contains_key(&pkid)
                    && let Some(waiter) = p.unsent.pop_front()
                {
                    p.by_pkid.insert(pkid, waiter);
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if let Ok(mut p) = pending.lock()
                    && let Some(waiter) = p.by_pkid.remove(&ack.pkid)
                {
                    let _ = waiter.send(());
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                connected.store(false, Ordering::Relaxed);
                let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                connected.store(false, Ordering::Relaxed);
                failures = failures.saturating_add(1);
                let wait = Duration::from_millis(100u64 << failures.min(6));
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "mqtt publisher connection failed");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            MqttSettings::new("mqtt://127.0.0.1:1884").host_port(),
            Ok(("127.0.0.1".to_string(), 1884))
        );
        assert_eq!(
            MqttSettings::new("mqtt://broker").host_port(),
            Ok(("broker".to_string(), 1883))
        );
        let err = MqttSettings::new("mqtts://broker")
            .host_port()
            .expect_err("tls");
        assert!(err.to_string().contains("mqtt://"), "{err}");
        assert!(MqttSettings::new("mqtt://b:x").host_port().is_err());
    }
}
