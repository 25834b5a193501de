//! The publishing connection: a QoS 1 publish is accepted when the broker acknowledged it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{Packet, Publish, QoS};
use tokio::sync::{mpsc, oneshot};

use super::wire::{Wire, WireError, backoff};
use super::{MqttSettings, MqttUrlError};

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

/// One publish on its way, and who waits for its acknowledgement.
struct Request {
    publish: Publish,
    done: oneshot::Sender<()>,
    /// Order of arrival, kept for resending after a reconnect.
    seq: u64,
}

enum Command {
    Publish(Publish, oneshot::Sender<()>),
    Close,
}

/// The publishing connection. Clones share it.
#[derive(Clone)]
pub struct MqttPublisher {
    commands: mpsc::UnboundedSender<Command>,
    connected: Arc<AtomicBool>,
}

impl std::fmt::Debug for MqttPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttPublisher").finish_non_exhaustive()
    }
}

impl MqttPublisher {
    /// Connects (in the background, retrying) with a persistent session, so publishes not
    /// yet acknowledged are resent after a reconnect.
    pub fn start(settings: &MqttSettings) -> Result<Self, MqttUrlError> {
        settings.host_port()?;
        let (commands, receiver) = mpsc::unbounded_channel();
        let connected = Arc::new(AtomicBool::new(false));
        tokio::spawn(
            Task {
                settings: settings.clone(),
                connected: connected.clone(),
                commands: receiver,
                queue: VecDeque::new(),
                in_flight: HashMap::new(),
                next_pkid: 0,
                next_seq: 0,
            }
            .run(),
        );
        Ok(Self {
            commands,
            connected,
        })
    }

    /// Whether the connection is up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Publishes `payload` on `topic`; with QoS 1, returns once the broker acknowledged it;
    /// with QoS 0, once it was written to the connection.
    pub async fn publish(
        &self,
        topic: String,
        payload: Vec<u8>,
        qos: u8,
        retain: bool,
        timeout: Duration,
    ) -> Result<(), PublishError> {
        let qos = if qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        let mut publish = Publish::new(topic, qos, payload);
        publish.retain = retain;
        let (done, acknowledged) = oneshot::channel();
        self.commands
            .send(Command::Publish(publish, done))
            .map_err(|_| PublishError::Closed)?;
        match tokio::time::timeout(timeout, acknowledged).await {
            Ok(result) => result.map_err(|_| PublishError::Closed),
            Err(_) => Err(PublishError::Timeout(timeout)),
        }
    }

    /// Disconnects after the publishes queued before this call.
    pub async fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }
}

/// The connection task and the publishes it holds across connections.
struct Task {
    settings: MqttSettings,
    connected: Arc<AtomicBool>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Not yet sent (the in-flight window is full, or there is no connection).
    queue: VecDeque<Request>,
    /// Sent, waiting for PUBACK, by packet id.
    in_flight: HashMap<u16, Request>,
    next_pkid: u16,
    next_seq: u64,
}

/// Why a session ended without an error.
enum End {
    Closed,
}

impl Task {
    async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            let settings = self.settings.clone();
            let connecting = Wire::connect(&settings, "out", false);
            tokio::pin!(connecting);
            let connected = loop {
                tokio::select! {
                    connected = &mut connecting => break connected,
                    closed = self.take_commands_while_down() => if closed { return },
                }
            };
            let result = match connected {
                Ok((wire, _)) => {
                    failures = 0;
                    self.connected.store(true, Ordering::Relaxed);
                    tracing::info!("mqtt publisher connected");
                    let result = self.session(wire).await;
                    self.connected.store(false, Ordering::Relaxed);
                    result
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(End::Closed) => return,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(failures);
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "mqtt publisher connection failed");
                    let deadline = tokio::time::Instant::now() + wait;
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep_until(deadline) => break,
                            closed = self.take_commands_while_down() => if closed { return },
                        }
                    }
                }
            }
        }
    }

    /// While there is no connection: queues publishes as they come. `true` once closed.
    async fn take_commands_while_down(&mut self) -> bool {
        match self.commands.recv().await {
            None | Some(Command::Close) => true,
            Some(Command::Publish(publish, done)) => {
                self.enqueue(publish, done);
                false
            }
        }
    }

    fn enqueue(&mut self, publish: Publish, done: oneshot::Sender<()>) {
        self.next_seq += 1;
        self.queue.push_back(Request {
            publish,
            done,
            seq: self.next_seq,
        });
    }

    /// A packet id no publish in flight uses.
    fn pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.in_flight.contains_key(&self.next_pkid) {
                return self.next_pkid;
            }
        }
    }

    /// Moves queued publishes onto the wire while the in-flight window has room. QoS 0
    /// publishes are done once written; their waiters are returned.
    fn send_queued(
        &mut self,
        wire: &mut Wire,
        written: &mut Vec<oneshot::Sender<()>>,
    ) -> Result<(), WireError> {
        let window = usize::from(self.settings.inflight.max(1));
        while self.in_flight.len() < window {
            let Some(mut request) = self.queue.pop_front() else {
                break;
            };
            if request.done.is_closed() {
                // Its caller gave up (timed out) and retries or dead-letters it.
                continue;
            }
            if request.publish.qos == QoS::AtMostOnce {
                wire.push(&Packet::Publish(request.publish))?;
                written.push(request.done);
                continue;
            }
            let pkid = self.pkid();
            request.publish.pkid = pkid;
            wire.push(&Packet::Publish(request.publish.clone()))?;
            self.in_flight.insert(pkid, request);
        }
        Ok(())
    }

    async fn session(&mut self, mut wire: Wire) -> Result<End, WireError> {
        // Publishes sent on the lost connection and not acknowledged go again, in order.
        let mut resend: Vec<Request> = self.in_flight.drain().map(|(_, r)| r).collect();
        resend.sort_by_key(|r| r.seq);
        for mut request in resend {
            if request.done.is_closed() {
                continue;
            }
            request.publish.dup = true;
            wire.push(&Packet::Publish(request.publish.clone()))?;
            self.in_flight.insert(request.publish.pkid, request);
        }
        let keep_alive = Duration::from_secs(self.settings.keep_alive());
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let mut written = Vec::new();
        let mut closing = false;
        loop {
            self.send_queued(&mut wire, &mut written)?;
            if closing {
                wire.push(&Packet::Disconnect)?;
            }
            wire.flush().await?;
            for done in written.drain(..) {
                let _ = done.send(());
            }
            if closing {
                return Ok(End::Closed);
            }
            tokio::select! {
                biased;
                read = wire.read_more() => {
                    read?;
                    last_heard = Instant::now();
                    while let Some(packet) = wire.take_packet()? {
                        match packet {
                            Packet::PubAck(ack) => {
                                if let Some(request) = self.in_flight.remove(&ack.pkid) {
                                    let _ = request.done.send(());
                                }
                            }
                            Packet::PingResp => {}
                            other => {
                                return Err(WireError::Protocol(format!(
                                    "unexpected packet from the broker: {other:?}"
                                )));
                            }
                        }
                    }
                }
                command = self.commands.recv() => {
                    let mut next = command;
                    loop {
                        match next {
                            None | Some(Command::Close) => {
                                closing = true;
                                break;
                            }
                            Some(Command::Publish(publish, done)) => self.enqueue(publish, done),
                        }
                        match self.commands.try_recv() {
                            Ok(command) => next = Some(command),
                            Err(_) => break,
                        }
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > keep_alive * 2 {
                        return Err(WireError::Timeout("the broker stopped answering pings"));
                    }
                    wire.push(&Packet::PingReq)?;
                }
            }
        }
    }
}
