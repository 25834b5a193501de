//! The subscribing connection: QoS 1 messages stay unacknowledged until they are settled.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{Packet, PubAck, QoS, Subscribe, SubscribeReasonCode, Unsubscribe};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::wire::{Wire, WireError, backoff};
use super::{MqttSettings, MqttUrlError};

/// What the connection task is asked to do.
#[derive(Debug)]
enum Command {
    /// Acknowledge message `pkid` received on connection `generation`.
    Ack { generation: u64, pkid: u16 },
    /// Subscribe to a filter now (it is also in the shared set, for reconnects).
    Subscribe(String),
    /// Unsubscribe from a filter now.
    Unsubscribe(String),
}

/// Where the subscriber stands: reading, no longer taking messages, or closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intake {
    Open,
    Paused,
    Closing,
}

/// Settles one received message with the broker: [`MqttAck::ack`] sends the PUBACK. A
/// message whose `MqttAck` is dropped unsent stays unacknowledged and the broker redelivers
/// it to the next session.
#[derive(Debug)]
pub struct MqttAck {
    commands: mpsc::UnboundedSender<Command>,
    generation: u64,
    pkid: u16,
}

impl MqttAck {
    /// Acknowledges the message to the broker. Acknowledgements queued together leave in
    /// one write. One that arrives after its connection was lost is not sent: the broker
    /// redelivers the message on the new connection (packet ids are per connection, and the
    /// id may already name another message there).
    pub fn ack(self) {
        let _ = self.commands.send(Command::Ack {
            generation: self.generation,
            pkid: self.pkid,
        });
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

/// State shared by the handle and its connection task.
#[derive(Debug, Default)]
struct Shared {
    filters: std::sync::Mutex<BTreeSet<String>>,
    connected: AtomicBool,
    generation: AtomicU64,
}

impl Shared {
    fn filters(&self) -> Vec<String> {
        self.filters
            .lock()
            .map(|f| f.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The subscribing connection. Received messages go to the channel given to
/// [`MqttSubscriber::start`]; when that channel is full the connection stops reading.
#[derive(Debug)]
pub struct MqttSubscriber {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    intake: watch::Sender<Intake>,
    task: JoinHandle<()>,
}

impl MqttSubscriber {
    /// Connects (in the background, retrying) with a persistent session and sends every
    /// message to `sink`.
    pub fn start(
        settings: &MqttSettings,
        sink: mpsc::Sender<MqttMessage>,
    ) -> Result<Self, MqttUrlError> {
        settings.host_port()?;
        let shared = Arc::new(Shared::default());
        let (commands, receiver) = mpsc::unbounded_channel();
        let (intake, intake_rx) = watch::channel(Intake::Open);
        let task = tokio::spawn(
            Task {
                settings: settings.clone(),
                shared: shared.clone(),
                acks: commands.clone(),
                commands: receiver,
                intake: intake_rx,
                sink,
                held: None,
            }
            .run(),
        );
        Ok(Self {
            shared,
            commands,
            intake,
            task,
        })
    }

    /// Subscribes to `filter` (QoS 1) now and after every reconnect.
    pub async fn subscribe(&self, filter: &str) {
        let new = self
            .shared
            .filters
            .lock()
            .map(|mut f| f.insert(filter.to_string()))
            .unwrap_or(false);
        if new {
            let _ = self.commands.send(Command::Subscribe(filter.to_string()));
        }
    }

    /// Stops receiving messages on `filter`.
    pub async fn unsubscribe(&self, filter: &str) {
        let removed = self
            .shared
            .filters
            .lock()
            .map(|mut f| f.remove(filter))
            .unwrap_or(false);
        if removed {
            let _ = self.commands.send(Command::Unsubscribe(filter.to_string()));
        }
    }

    /// The filters subscribed to.
    pub fn filters(&self) -> Vec<String> {
        self.shared.filters()
    }

    /// Whether the connection is up.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Stops reading new messages (the session and its unacknowledged messages stay with the
    /// broker). Acknowledgements already requested are still sent until [`Self::close`].
    pub fn pause_intake(&self) {
        self.intake.send_if_modified(|intake| {
            let open = *intake == Intake::Open;
            if open {
                *intake = Intake::Paused;
            }
            open
        });
    }

    /// Sends the pending acknowledgements, disconnects and waits for the connection to end.
    pub async fn close(self) {
        let _ = self.intake.send(Intake::Closing);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// The connection task.
struct Task {
    settings: MqttSettings,
    shared: Arc<Shared>,
    /// A sender for the acknowledgements of messages this task hands out.
    acks: mpsc::UnboundedSender<Command>,
    commands: mpsc::UnboundedReceiver<Command>,
    intake: watch::Receiver<Intake>,
    sink: mpsc::Sender<MqttMessage>,
    /// A message read while `sink` was full: reading waits until it is taken.
    held: Option<MqttMessage>,
}

/// How a connection ended.
enum End {
    /// Asked to close: the task is done.
    Closed,
    /// The pipeline is gone: nobody takes messages any more.
    SinkGone,
}

impl Task {
    async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            if *self.intake.borrow() == Intake::Closing {
                return;
            }
            let connected = tokio::select! {
                connected = Wire::connect(&self.settings, "in", false) => connected,
                _ = self.intake.wait_for(|i| *i == Intake::Closing) => return,
            };
            let result = match connected {
                Ok((wire, _session_present)) => {
                    failures = 0;
                    let generation = self.shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
                    self.shared.connected.store(true, Ordering::Relaxed);
                    tracing::info!("mqtt subscriber connected");
                    let result = self.session(wire, generation).await;
                    self.shared.connected.store(false, Ordering::Relaxed);
                    // Messages read on the lost connection are redelivered by the broker.
                    self.held = None;
                    result
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(End::Closed | End::SinkGone) => return,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(failures);
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "mqtt subscriber connection failed");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.intake.wait_for(|i| *i == Intake::Closing) => return,
                    }
                }
            }
        }
    }

    /// Runs one connection until it fails or the subscriber closes.
    async fn session(&mut self, mut wire: Wire, generation: u64) -> Result<End, WireError> {
        let keep_alive = Duration::from_secs(self.settings.keep_alive());
        let mut next_pkid = 0u16;
        let mut pkid = || {
            next_pkid = next_pkid.checked_add(1).unwrap_or(1);
            next_pkid
        };
        let filters = self.shared.filters();
        if !filters.is_empty() {
            let mut subscribe = Subscribe::new_many(
                filters
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce)),
            );
            subscribe.pkid = pkid();
            wire.push(&Packet::Subscribe(subscribe))?;
        }
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            wire.flush().await?;
            let intake = *self.intake.borrow();
            if intake == Intake::Closing {
                // Drain the acknowledgements already requested, then say goodbye.
                while let Ok(command) = self.commands.try_recv() {
                    Self::command(&mut wire, command, generation, &mut pkid)?;
                }
                wire.push(&Packet::Disconnect)?;
                wire.flush().await?;
                return Ok(End::Closed);
            }
            let reading = self.held.is_none();
            tokio::select! {
                biased;
                command = self.commands.recv() => {
                    // The handle holds a sender, and so does this task.
                    let Some(command) = command else { return Ok(End::Closed) };
                    Self::command(&mut wire, command, generation, &mut pkid)?;
                    // Everything else queued goes in the same write.
                    while let Ok(command) = self.commands.try_recv() {
                        Self::command(&mut wire, command, generation, &mut pkid)?;
                    }
                }
                changed = self.intake.changed() => {
                    if changed.is_err() {
                        // The handle is gone without closing: end the session politely.
                        wire.push(&Packet::Disconnect)?;
                        wire.flush().await?;
                        return Ok(End::Closed);
                    }
                }
                permit = self.sink.clone().reserve_owned(), if self.held.is_some() => {
                    let Ok(permit) = permit else { return Ok(End::SinkGone) };
                    if let Some(message) = self.held.take() {
                        permit.send(message);
                    }
                    if self.handle_incoming(&mut wire, generation)?.is_some() {
                        return Ok(End::SinkGone);
                    }
                }
                read = wire.read_more(), if reading => {
                    read?;
                    last_heard = Instant::now();
                    if self.handle_incoming(&mut wire, generation)?.is_some() {
                        return Ok(End::SinkGone);
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

    fn command(
        wire: &mut Wire,
        command: Command,
        generation: u64,
        pkid: &mut impl FnMut() -> u16,
    ) -> Result<(), WireError> {
        match command {
            Command::Ack {
                generation: of,
                pkid,
            } => {
                if of == generation {
                    wire.push(&Packet::PubAck(PubAck::new(pkid)))?;
                }
            }
            Command::Subscribe(filter) => {
                let mut subscribe = Subscribe::new(filter, QoS::AtLeastOnce);
                subscribe.pkid = pkid();
                wire.push(&Packet::Subscribe(subscribe))?;
            }
            Command::Unsubscribe(filter) => {
                let mut unsubscribe = Unsubscribe::new(filter);
                unsubscribe.pkid = pkid();
                wire.push(&Packet::Unsubscribe(unsubscribe))?;
            }
        }
        Ok(())
    }

    /// Handles every whole packet read so far, up to the first message `sink` has no room
    /// for (that one is held). `Some(())` when the sink is gone.
    fn handle_incoming(
        &mut self,
        wire: &mut Wire,
        generation: u64,
    ) -> Result<Option<()>, WireError> {
        while self.held.is_none() {
            let Some(packet) = wire.take_packet()? else {
                break;
            };
            match packet {
                Packet::Publish(publish) => {
                    if *self.intake.borrow() != Intake::Open {
                        // Not taking messages: it stays unacknowledged and comes back.
                        continue;
                    }
                    let ack = (publish.qos != QoS::AtMostOnce).then(|| MqttAck {
                        commands: self.acks.clone(),
                        generation,
                        pkid: publish.pkid,
                    });
                    if publish.qos == QoS::ExactlyOnce {
                        tracing::warn!(topic = %publish.topic, "QoS 2 message handled as QoS 1");
                    }
                    let message = MqttMessage {
                        topic: publish.topic,
                        payload: publish.payload,
                        ack,
                    };
                    match self.sink.try_send(message) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(message)) => self.held = Some(message),
                        Err(mpsc::error::TrySendError::Closed(_)) => return Ok(Some(())),
                    }
                }
                Packet::SubAck(ack) => {
                    if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                        tracing::warn!(filters = ?self.shared.filters(), "the broker refused a subscription");
                    }
                }
                Packet::PingResp | Packet::UnsubAck(_) | Packet::PubAck(_) => {}
                other => {
                    return Err(WireError::Protocol(format!(
                        "unexpected packet from the broker: {other:?}"
                    )));
                }
            }
        }
        Ok(None)
    }
}
