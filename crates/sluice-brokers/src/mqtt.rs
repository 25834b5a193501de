//! An MQTT test client that waits for the broker's acknowledgements.

use crate::ProbeError;
use rumqttc::{
    AsyncClient, ClientError, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS,
    SubscribeReasonCode,
};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};

/// How long `connect` waits for the broker's CONNACK.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long any single SUBACK, PUBACK or PUBCOMP may take.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Unacknowledged QoS 1/2 publishes the client keeps on the wire (also the packet id range).
const MAX_INFLIGHT: u16 = 1000;
/// Requests queued between the probe and its event loop.
const REQUEST_CAPACITY: usize = 1024;
/// Largest packet sent or accepted.
const MAX_PACKET_BYTES: usize = 16 * 1024 * 1024;

static NEXT_CLIENT: AtomicU64 = AtomicU64::new(0);

type AckResult = Result<(), ProbeError>;
type AckSender = oneshot::Sender<AckResult>;
type AckReceiver = oneshot::Receiver<AckResult>;

/// An MQTT 3.1.1 client for tests, connected with a unique client id and a clean session.
///
/// A dedicated task drives the connection, answers incoming QoS 1/2 publishes and resolves each
/// `subscribe`/`publish` when the broker acknowledges it. Received publishes queue up until read
/// with [`MqttProbe::next_message`] or [`MqttProbe::collect`].
#[derive(Debug)]
pub struct MqttProbe {
    client: AsyncClient,
    client_id: String,
    acks: Arc<Mutex<Acks>>,
    /// Keeps "register the waiter" and "hand the request to the client" in the same order for
    /// concurrent callers, so the event loop's packet-id reports line up with the waiters.
    send_order: tokio::sync::Mutex<()>,
    incoming: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    event_loop: JoinHandle<()>,
}

impl MqttProbe {
    /// Connects to `url` (`mqtt://host:port`, `tcp://host:port` or `host:port`) and waits for
    /// the broker's CONNACK.
    pub async fn connect(url: &str) -> Result<Self, ProbeError> {
        let (host, port) = parse_url(url)?;
        let client_id = format!(
            "sluice-probe-{}-{}",
            std::process::id(),
            NEXT_CLIENT.fetch_add(1, Ordering::Relaxed)
        );
        let mut options = MqttOptions::new(client_id.clone(), host, port);
        options
            .set_clean_session(true)
            .set_keep_alive(Duration::from_secs(30))
            .set_inflight(MAX_INFLIGHT)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        let (client, event_loop) = AsyncClient::new(options, REQUEST_CAPACITY);

        let acks = Arc::new(Mutex::new(Acks::default()));
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let (connected_tx, connected_rx) = oneshot::channel();
        let event_loop = tokio::spawn(drive(
            event_loop,
            Arc::clone(&acks),
            incoming_tx,
            connected_tx,
        ));

        let connected = match timeout(CONNECT_TIMEOUT, connected_rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the event loop stopped".to_string()),
            Err(_) => {
                event_loop.abort();
                return Err(ProbeError::AckTimeout {
                    what: "CONNACK",
                    timeout_ms: CONNECT_TIMEOUT.as_millis(),
                });
            }
        };
        if let Err(reason) = connected {
            event_loop.abort();
            return Err(ProbeError::MqttConnect {
                url: url.to_string(),
                reason,
            });
        }
        tracing::debug!(%client_id, url, "MQTT probe connected");
        Ok(Self {
            client,
            client_id,
            acks,
            send_order: tokio::sync::Mutex::new(()),
            incoming,
            event_loop,
        })
    }

    /// The MQTT client id this probe connected with.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Subscribes to `filter` at QoS 1 and waits for the broker's SUBACK; a rejected
    /// subscription is an error.
    pub async fn subscribe(&self, filter: &str) -> Result<(), ProbeError> {
        let ack = self
            .enqueue(
                Pending::Subscribe(filter.to_string()),
                self.client.subscribe(filter, QoS::AtLeastOnce),
            )
            .await?;
        wait_ack(ack, "SUBACK").await
    }

    /// Publishes one message and waits until it is delivered to the broker: the PUBACK for
    /// QoS 1, the PUBCOMP for QoS 2, and the socket write for QoS 0.
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        qos: QoS,
    ) -> Result<(), ProbeError> {
        let ack = self
            .start_publish(topic.to_string(), payload.into(), qos)
            .await?;
        wait_ack(ack, ack_name(qos)).await
    }

    /// Publishes every `(topic, payload)` at QoS 1, keeping up to `window` (at least 1)
    /// unacknowledged at a time, and returns how many were published once all are acked.
    pub async fn publish_many<I, T, P>(
        &self,
        messages: I,
        window: usize,
    ) -> Result<usize, ProbeError>
    where
        I: IntoIterator<Item = (T, P)>,
        T: Into<String>,
        P: Into<Vec<u8>>,
    {
        let window = window.max(1);
        let mut unacked: VecDeque<AckReceiver> = VecDeque::with_capacity(window.min(4096));
        let mut published = 0;
        for (topic, payload) in messages {
            if unacked.len() >= window
                && let Some(oldest) = unacked.pop_front()
            {
                wait_ack(oldest, "PUBACK").await?;
            }
            let ack = self
                .start_publish(topic.into(), payload.into(), QoS::AtLeastOnce)
                .await?;
            unacked.push_back(ack);
            published += 1;
        }
        for ack in unacked {
            wait_ack(ack, "PUBACK").await?;
        }
        Ok(published)
    }

    /// The next received publish as `(topic, payload)`, or `None` if none arrives within
    /// `timeout` (or the connection is gone and everything received has been read).
    pub async fn next_message(&mut self, timeout: Duration) -> Option<(String, Vec<u8>)> {
        tokio::time::timeout(timeout, self.incoming.recv())
            .await
            .ok()
            .flatten()
    }

    /// Up to `n` received publishes, waiting at most `timeout` in total; fewer means the rest
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

    async fn start_publish(
        &self,
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
    ) -> Result<AckReceiver, ProbeError> {
        let send = self.client.publish(topic.clone(), qos, false, payload);
        self.enqueue(Pending::Publish { topic, qos }, send).await
    }

    /// Registers a waiter for the request, then hands the request to the client, both under
    /// `send_order`, so waiters are queued in exactly the order the event loop sees requests.
    async fn enqueue(
        &self,
        pending: Pending,
        send: impl Future<Output = Result<(), ClientError>>,
    ) -> Result<AckReceiver, ProbeError> {
        let _order = self.send_order.lock().await;
        let (tx, rx) = oneshot::channel();
        {
            let mut acks = lock(&self.acks);
            if let Some(reason) = &acks.closed {
                return Err(ProbeError::MqttDisconnected {
                    reason: reason.clone(),
                });
            }
            acks.queue(pending, tx);
        }
        // Until the request reaches the event loop its waiter is the newest one queued (we hold
        // `send_order`); if sending fails or this future is dropped, take the waiter back out.
        let mut guard = UnqueueOnDrop {
            acks: &self.acks,
            armed: true,
        };
        if send.await.is_err() {
            guard.armed = false;
            let mut acks = lock(&self.acks);
            let topic = acks.unqueue_newest();
            return Err(match &acks.closed {
                Some(reason) => ProbeError::MqttDisconnected {
                    reason: reason.clone(),
                },
                None => ProbeError::InvalidTopic { topic },
            });
        }
        guard.armed = false;
        Ok(rx)
    }
}

/// Removes the newest queued waiter when a request is abandoned before reaching the client.
struct UnqueueOnDrop<'a> {
    acks: &'a Mutex<Acks>,
    armed: bool,
}

impl Drop for UnqueueOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            lock(self.acks).unqueue_newest();
        }
    }
}

impl Drop for MqttProbe {
    fn drop(&mut self) {
        self.event_loop.abort();
    }
}

/// A request whose acknowledgement a caller waits for.
enum Pending {
    Publish { topic: String, qos: QoS },
    Subscribe(String),
}

/// Waiters for broker acknowledgements. The event loop reports each request's packet id when it
/// writes it (in request order), then the acknowledgement by packet id.
#[derive(Debug, Default)]
struct Acks {
    /// Publishes handed to the client that have no packet id yet, oldest first.
    queued_publishes: VecDeque<(String, QoS, AckSender)>,
    /// Subscribes handed to the client that have no packet id yet, oldest first.
    queued_subscribes: VecDeque<(String, AckSender)>,
    /// Which queue the newest request went to, for `unqueue_newest`.
    newest_was_publish: bool,
    /// A publish whose packet id was still in use; the client resends it under that id later.
    collided: Option<(u16, AckSender)>,
    /// QoS 1/2 publishes on the wire, waiting for PUBACK or PUBCOMP.
    publishes: HashMap<u16, AckSender>,
    /// Subscribes on the wire, waiting for SUBACK.
    subscribes: HashMap<u16, (String, AckSender)>,
    /// Why the event loop stopped, once it has.
    closed: Option<String>,
}

impl Acks {
    fn queue(&mut self, pending: Pending, tx: AckSender) {
        match pending {
            Pending::Publish { topic, qos } => {
                self.queued_publishes.push_back((topic, qos, tx));
                self.newest_was_publish = true;
            }
            Pending::Subscribe(filter) => {
                self.queued_subscribes.push_back((filter, tx));
                self.newest_was_publish = false;
            }
        }
    }

    /// Removes the most recently queued waiter and returns its topic or filter.
    fn unqueue_newest(&mut self) -> String {
        if self.newest_was_publish {
            self.queued_publishes.pop_back().map(|(topic, ..)| topic)
        } else {
            self.queued_subscribes.pop_back().map(|(filter, _)| filter)
        }
        .unwrap_or_default()
    }

    fn on_event(&mut self, event: Event, incoming: &mpsc::UnboundedSender<(String, Vec<u8>)>) {
        match event {
            Event::Incoming(Incoming::Publish(publish)) => {
                // The receiver is gone only when the probe is being dropped.
                let _ = incoming.send((publish.topic, publish.payload.to_vec()));
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some((id, tx)) = self.collided.take() {
                    if id == pkid {
                        self.publishes.insert(pkid, tx);
                        return;
                    }
                    self.collided = Some((id, tx));
                }
                if let Some((_, qos, tx)) = self.queued_publishes.pop_front() {
                    if qos == QoS::AtMostOnce {
                        let _ = tx.send(Ok(()));
                    } else {
                        self.publishes.insert(pkid, tx);
                    }
                }
            }
            Event::Outgoing(Outgoing::AwaitAck(pkid)) => {
                if let Some((_, _, tx)) = self.queued_publishes.pop_front() {
                    self.collided = Some((pkid, tx));
                }
            }
            Event::Incoming(Incoming::PubAck(ack)) => self.resolve_publish(ack.pkid),
            Event::Incoming(Incoming::PubComp(comp)) => self.resolve_publish(comp.pkid),
            Event::Outgoing(Outgoing::Subscribe(pkid)) => {
                if let Some(waiter) = self.queued_subscribes.pop_front() {
                    self.subscribes.insert(pkid, waiter);
                }
            }
            Event::Incoming(Incoming::SubAck(suback)) => {
                if let Some((filter, tx)) = self.subscribes.remove(&suback.pkid) {
                    let rejected = suback
                        .return_codes
                        .iter()
                        .any(|code| matches!(code, SubscribeReasonCode::Failure));
                    let result = if rejected {
                        Err(ProbeError::SubscribeRejected { filter })
                    } else {
                        Ok(())
                    };
                    let _ = tx.send(result);
                }
            }
            _ => {}
        }
    }

    fn resolve_publish(&mut self, pkid: u16) {
        if let Some(tx) = self.publishes.remove(&pkid) {
            let _ = tx.send(Ok(()));
        }
    }

    /// Marks the connection closed and fails every waiter.
    fn close(&mut self, reason: String) {
        let fail = |tx: AckSender| {
            let _ = tx.send(Err(ProbeError::MqttDisconnected {
                reason: reason.clone(),
            }));
        };
        self.queued_publishes
            .drain(..)
            .for_each(|(_, _, tx)| fail(tx));
        self.queued_subscribes
            .drain(..)
            .for_each(|(_, tx)| fail(tx));
        self.collided
            .take()
            .into_iter()
            .for_each(|(_, tx)| fail(tx));
        self.publishes.drain().for_each(|(_, tx)| fail(tx));
        self.subscribes.drain().for_each(|(_, (_, tx))| fail(tx));
        self.closed = Some(reason);
    }
}

/// Runs the rumqttc event loop until the first connection error; the probe does not reconnect.
async fn drive(
    mut event_loop: EventLoop,
    acks: Arc<Mutex<Acks>>,
    incoming: mpsc::UnboundedSender<(String, Vec<u8>)>,
    connected: oneshot::Sender<Result<(), String>>,
) {
    let mut connected = Some(connected);
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                if let Some(tx) = connected.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            Ok(event) => lock(&acks).on_event(event, &incoming),
            Err(error) => {
                let reason = error.to_string();
                tracing::debug!(%reason, "MQTT probe event loop stopped");
                if let Some(tx) = connected.take() {
                    let _ = tx.send(Err(reason.clone()));
                }
                lock(&acks).close(reason);
                return;
            }
        }
    }
}

async fn wait_ack(ack: AckReceiver, what: &'static str) -> Result<(), ProbeError> {
    match timeout(ACK_TIMEOUT, ack).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(ProbeError::MqttDisconnected {
            reason: "the event loop stopped".to_string(),
        }),
        Err(_) => Err(ProbeError::AckTimeout {
            what,
            timeout_ms: ACK_TIMEOUT.as_millis(),
        }),
    }
}

fn ack_name(qos: QoS) -> &'static str {
    match qos {
        QoS::AtMostOnce => "socket write",
        QoS::AtLeastOnce => "PUBACK",
        QoS::ExactlyOnce => "PUBCOMP",
    }
}

fn lock(acks: &Mutex<Acks>) -> MutexGuard<'_, Acks> {
    acks.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Splits `mqtt://host:port`, `tcp://host:port` or `host:port` (port defaults to 1883).
fn parse_url(url: &str) -> Result<(String, u16), ProbeError> {
    let invalid = |reason| ProbeError::InvalidUrl {
        url: url.to_string(),
        reason,
    };
    let rest = match url.split_once("://") {
        Some(("mqtt" | "tcp", rest)) => rest,
        Some(_) => return Err(invalid("only mqtt:// and tcp:// are supported")),
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .map_err(|_| invalid("the port is not a number from 0 to 65535"))?,
        ),
        None => (rest, 1883),
    };
    if host.is_empty() {
        return Err(invalid("the host is empty"));
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_url_accepts_mqtt_tcp_and_bare_addresses() {
        let expected = ("127.0.0.1".to_string(), 1884);
        assert_eq!(parse_url("mqtt://127.0.0.1:1884").expect("mqtt"), expected);
        assert_eq!(parse_url("tcp://127.0.0.1:1884/").expect("tcp"), expected);
        assert_eq!(parse_url("127.0.0.1:1884").expect("bare"), expected);
        assert_eq!(
            parse_url("mqtt://localhost").expect("default port"),
            ("localhost".to_string(), 1883)
        );
    }

    #[test]
    fn parse_url_rejects_other_schemes_and_bad_ports() {
        assert!(matches!(
            parse_url("ws://127.0.0.1:1884"),
            Err(ProbeError::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse_url("mqtt://127.0.0.1:99999"),
            Err(ProbeError::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse_url("mqtt://:1883"),
            Err(ProbeError::InvalidUrl { .. })
        ));
    }
}
