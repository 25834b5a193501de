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

/// Acknowledgements that leave at once, without waiting for `ack_delay_ms`: enough to batch
/// under load, few enough for a broker that keeps a small window of unacknowledged messages
/// (mosquitto's default is 20).
const ACK_BATCH: usize = 8;

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
///
/// The connection lets go of the channel when its intake ends ([`Self::pause_intake`],
/// [`Self::close`]) or its receiver is gone; acknowledgements keep flowing until it closes.
/// A consumer that waits for every sender to be dropped therefore ends once intake stops.
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
        Self::start_with(settings, sink, Some)
    }

    /// Like [`Self::start`], with every message turned into the consumer's own item by
    /// `convert` first, on the connection's task (no hop through another task). When
    /// `convert` returns `None` the message is not passed on; `convert` acknowledges it or
    /// not.
    pub fn start_with<T, F>(
        settings: &MqttSettings,
        sink: mpsc::Sender<T>,
        convert: F,
    ) -> Result<Self, MqttUrlError>
    where
        T: Send + 'static,
        F: FnMut(MqttMessage) -> Option<T> + Send + 'static,
    {
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
                sink: Some(sink),
                convert,
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
struct Task<T, F> {
    settings: MqttSettings,
    shared: Arc<Shared>,
    /// A sender for the acknowledgements of messages this task hands out.
    acks: mpsc::UnboundedSender<Command>,
    commands: mpsc::UnboundedReceiver<Command>,
    intake: watch::Receiver<Intake>,
    /// Where messages go; `None` once intake has ended or the receiver is gone.
    sink: Option<mpsc::Sender<T>>,
    /// Turns a received message into what `sink` takes.
    convert: F,
    /// A message read while `sink` was full: reading waits until it is taken.
    held: Option<T>,
}

/// What handling a command put on the wire.
enum Pushed {
    /// An acknowledgement: it may wait a little for company.
    Ack,
    /// Anything else: it leaves at once.
    Other,
    /// Nothing (an acknowledgement for a lost connection).
    Nothing,
}

/// How a connection ended: asked to close, the task is done.
struct Closed;

/// Waits for room in `sink` (forever when there is no sink).
async fn reserve<T>(sink: Option<mpsc::Sender<T>>) -> Option<mpsc::OwnedPermit<T>> {
    match sink {
        Some(sink) => sink.reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

impl<T, F> Task<T, F>
where
    T: Send + 'static,
    F: FnMut(MqttMessage) -> Option<T> + Send + 'static,
{
    /// Lets go of the sink once intake has ended: nothing more will be passed on, and the
    /// consumer may be waiting for every sender to be gone.
    fn release_sink_when_intake_ends(&mut self) {
        if *self.intake.borrow() != Intake::Open {
            self.sink = None;
            self.held = None;
        }
    }

    async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            self.release_sink_when_intake_ends();
            if *self.intake.borrow() == Intake::Closing {
                return;
            }
            let open = self.sink.is_some();
            let connected = tokio::select! {
                connected = Wire::connect(&self.settings, "in", false) => connected,
                // Closing, or intake ended while the sink is still held: back to the top.
                _ = self.intake.wait_for(|i| *i == Intake::Closing || (open && *i != Intake::Open)) => continue,
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
                Ok(Closed) => return,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(failures);
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "mqtt subscriber connection failed");
                    let open = self.sink.is_some();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.intake.wait_for(|i| *i == Intake::Closing || (open && *i != Intake::Open)) => {}
                    }
                }
            }
        }
    }

    /// Runs one connection until it fails or the subscriber closes.
    async fn session(&mut self, mut wire: Wire, generation: u64) -> Result<Closed, WireError> {
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
        // Messages that came in the same read as the CONNACK (a persistent session's queue).
        self.handle_incoming(&mut wire, generation)?;
        // Acknowledgements wait in `wire` for the next write, a batch or their deadline;
        // anything else written leaves at once. Fewer, larger writes cost less, and while
        // acknowledgements wait, a broker that batches small writes (Nagle's algorithm, as
        // mosquitto does by default) sends messages in batches too: fewer wake-ups here.
        let ack_delay = Duration::from_millis(self.settings.ack_delay_ms);
        let mut urgent = true;
        let mut acks = 0usize;
        let mut acks_due: Option<tokio::time::Instant> = None;
        let ack_timer = tokio::time::sleep(ack_delay);
        tokio::pin!(ack_timer);
        loop {
            let now = tokio::time::Instant::now();
            if urgent
                || acks >= ACK_BATCH
                || (acks > 0 && ack_delay.is_zero())
                || acks_due.is_some_and(|due| due <= now)
            {
                wire.flush().await?;
                (urgent, acks, acks_due) = (false, 0, None);
            } else if acks > 0 && acks_due.is_none() {
                let due = now + ack_delay;
                acks_due = Some(due);
                ack_timer.as_mut().reset(due);
            }
            self.release_sink_when_intake_ends();
            let intake = *self.intake.borrow();
            if intake == Intake::Closing {
                // Drain the acknowledgements already requested, then say goodbye.
                while let Ok(command) = self.commands.try_recv() {
                    Self::command(&mut wire, command, generation, &mut pkid)?;
                }
                wire.push(&Packet::Disconnect)?;
                wire.flush().await?;
                return Ok(Closed);
            }
            let reading = self.held.is_none();
            tokio::select! {
                biased;
                command = self.commands.recv() => {
                    // The handle holds a sender, and so does this task.
                    let Some(command) = command else { return Ok(Closed) };
                    let mut command = Some(command);
                    // Everything else queued goes in the same write.
                    while let Some(next) = command.take().or_else(|| self.commands.try_recv().ok()) {
                        match Self::command(&mut wire, next, generation, &mut pkid)? {
                            Pushed::Ack => acks += 1,
                            Pushed::Other => urgent = true,
                            Pushed::Nothing => {}
                        }
                    }
                }
                () = &mut ack_timer, if acks_due.is_some() => {}
                changed = self.intake.changed() => {
                    if changed.is_err() {
                        // The handle is gone without closing: end the session politely.
                        wire.push(&Packet::Disconnect)?;
                        wire.flush().await?;
                        return Ok(Closed);
                    }
                }
                permit = reserve(self.sink.clone()), if self.held.is_some() => {
                    match permit {
                        Some(permit) => {
                            if let Some(message) = self.held.take() {
                                permit.send(message);
                            }
                        }
                        None => self.receiver_gone(),
                    }
                    self.handle_incoming(&mut wire, generation)?;
                }
                read = wire.read_more(), if reading => {
                    read?;
                    last_heard = Instant::now();
                    self.handle_incoming(&mut wire, generation)?;
                    // Awake anyway: the acknowledgements waiting go now.
                    urgent |= acks > 0;
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > keep_alive * 2 {
                        return Err(WireError::Timeout("the broker stopped answering pings"));
                    }
                    wire.push(&Packet::PingReq)?;
                    urgent = true;
                }
            }
        }
    }

    fn command(
        wire: &mut Wire,
        command: Command,
        generation: u64,
        pkid: &mut impl FnMut() -> u16,
    ) -> Result<Pushed, WireError> {
        match command {
            Command::Ack {
                generation: of,
                pkid,
            } => {
                if of != generation {
                    return Ok(Pushed::Nothing);
                }
                wire.push(&Packet::PubAck(PubAck::new(pkid)))?;
                return Ok(Pushed::Ack);
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
        Ok(Pushed::Other)
    }

    /// Nobody takes messages any more: they stay unacknowledged from now on, and the broker
    /// keeps them for the session's next connection.
    fn receiver_gone(&mut self) {
        if self.sink.take().is_some() {
            tracing::debug!("mqtt subscriber: the receiver of its messages is gone");
        }
        self.held = None;
    }

    /// Handles every whole packet read so far, up to the first message `sink` has no room
    /// for (that one is held).
    fn handle_incoming(&mut self, wire: &mut Wire, generation: u64) -> Result<(), WireError> {
        while self.held.is_none() {
            let Some(packet) = wire.take_packet()? else {
                break;
            };
            match packet {
                Packet::Publish(publish) => {
                    self.release_sink_when_intake_ends();
                    let Some(sink) = &self.sink else {
                        // Not taking messages: it stays unacknowledged and comes back.
                        continue;
                    };
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
                    let Some(item) = (self.convert)(message) else {
                        continue;
                    };
                    match sink.try_send(item) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(item)) => self.held = Some(item),
                        Err(mpsc::error::TrySendError::Closed(_)) => self.receiver_gone(),
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rumqttc::{ConnAck, ConnectReturnCode, Publish};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const WAIT: Duration = Duration::from_secs(10);

    /// A scripted broker end of one connection: reads packets, writes packets.
    struct Peer {
        stream: TcpStream,
        incoming: BytesMut,
    }

    impl Peer {
        async fn accept(listener: &TcpListener) -> Self {
            let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
                .await
                .expect("the subscriber connects")
                .expect("accept");
            let mut peer = Self {
                stream,
                incoming: BytesMut::new(),
            };
            assert!(matches!(peer.next().await, Packet::Connect(..)));
            peer.send(&Packet::ConnAck(ConnAck::new(
                ConnectReturnCode::Success,
                false,
            )))
            .await;
            peer
        }

        async fn send(&mut self, packet: &Packet) {
            let mut out = BytesMut::new();
            packet
                .write(&mut out, super::super::MAX_PACKET)
                .expect("encode");
            self.stream.write_all(&out).await.expect("write");
        }

        /// The next packet, or `None` if nothing whole arrives within `within`.
        async fn next_within(&mut self, within: Duration) -> Option<Packet> {
            let deadline = tokio::time::Instant::now() + within;
            loop {
                match Packet::read(&mut self.incoming, super::super::MAX_PACKET) {
                    Ok(packet) => return Some(packet),
                    Err(rumqttc::Error::InsufficientBytes(_)) => {}
                    Err(e) => panic!("bad packet from the subscriber: {e}"),
                }
                let read =
                    tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.incoming));
                match read.await {
                    Err(_) => return None,
                    Ok(read) => assert!(read.expect("read") > 0, "the subscriber hung up"),
                }
            }
        }

        async fn next(&mut self) -> Packet {
            self.next_within(WAIT)
                .await
                .expect("a packet from the subscriber")
        }

        /// The PUBACKs that arrive within `within`, skipping SUBSCRIBEs and pings.
        async fn pubacks_within(&mut self, within: Duration) -> Vec<u16> {
            let mut acked = Vec::new();
            let deadline = tokio::time::Instant::now() + within;
            while let Some(packet) = self
                .next_within(deadline.saturating_duration_since(tokio::time::Instant::now()))
                .await
            {
                if let Packet::PubAck(ack) = packet {
                    acked.push(ack.pkid);
                }
            }
            acked
        }
    }

    fn publish(pkid: u16) -> Packet {
        let mut publish = Publish::new("t/1", QoS::AtLeastOnce, vec![pkid as u8]);
        publish.pkid = pkid;
        Packet::Publish(publish)
    }

    async fn connected(ack_delay_ms: u64) -> (MqttSubscriber, mpsc::Receiver<MqttMessage>, Peer) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut settings = MqttSettings::new(format!("mqtt://127.0.0.1:{port}"));
        settings.ack_delay_ms = ack_delay_ms;
        let (tx, rx) = mpsc::channel(16);
        let subscriber = MqttSubscriber::start(&settings, tx).expect("start");
        let peer = Peer::accept(&listener).await;
        (subscriber, rx, peer)
    }

    async fn received(rx: &mut mpsc::Receiver<MqttMessage>) -> MqttMessage {
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("a message")
            .expect("the subscriber runs")
    }

    #[tokio::test]
    async fn an_acknowledgement_waits_at_most_its_delay_while_the_connection_stays_open() {
        let (subscriber, mut rx, mut peer) = connected(200).await;
        peer.send(&publish(1)).await;
        let message = received(&mut rx).await;
        message.ack.expect("QoS 1").ack();
        // Not at once: it waits for company...
        assert_eq!(
            peer.pubacks_within(Duration::from_millis(50)).await,
            Vec::<u16>::new()
        );
        // ...but not for ever, with nothing else happening on the connection.
        assert_eq!(peer.pubacks_within(Duration::from_secs(3)).await, vec![1]);
        subscriber.close().await;
    }

    #[tokio::test]
    async fn waiting_acknowledgements_leave_with_the_next_read_and_a_full_batch_leaves_at_once() {
        let (subscriber, mut rx, mut peer) = connected(60_000).await;
        peer.send(&publish(1)).await;
        received(&mut rx).await.ack.expect("QoS 1").ack();
        assert_eq!(
            peer.pubacks_within(Duration::from_millis(100)).await,
            Vec::<u16>::new()
        );
        // A new message wakes the connection: the waiting acknowledgement goes out.
        peer.send(&publish(2)).await;
        let second = received(&mut rx).await;
        assert_eq!(
            peer.pubacks_within(Duration::from_millis(500)).await,
            vec![1]
        );
        second.ack.expect("QoS 1").ack();
        // A batch of acknowledgements leaves without waiting for the (one minute) delay.
        let batch: Vec<u16> = (3..3 + ACK_BATCH as u16).collect();
        let mut acks = Vec::new();
        for &pkid in &batch {
            peer.send(&publish(pkid)).await;
            acks.push(received(&mut rx).await.ack.expect("QoS 1"));
        }
        // Reading those sent #2's acknowledgement.
        assert_eq!(
            peer.pubacks_within(Duration::from_millis(500)).await,
            vec![2]
        );
        for ack in acks {
            ack.ack();
        }
        assert_eq!(peer.pubacks_within(Duration::from_millis(500)).await, batch);
        subscriber.close().await;
    }

    #[tokio::test]
    async fn with_no_delay_each_acknowledgement_leaves_at_once() {
        let (subscriber, mut rx, mut peer) = connected(0).await;
        // Sent right behind the CONNACK: it may come in the same read.
        peer.send(&publish(7)).await;
        received(&mut rx).await.ack.expect("QoS 1").ack();
        assert_eq!(
            peer.pubacks_within(Duration::from_millis(500)).await,
            vec![7]
        );
        subscriber.close().await;
    }

    #[tokio::test]
    async fn pausing_intake_lets_go_of_the_channel_and_acknowledgements_still_leave() {
        let (subscriber, mut rx, mut peer) = connected(0).await;
        peer.send(&publish(1)).await;
        let message = received(&mut rx).await;
        subscriber.pause_intake();
        // Every sender is gone: the receiver ends, which a consumer draining it relies on.
        assert!(
            tokio::time::timeout(WAIT, rx.recv())
                .await
                .expect("the channel closes")
                .is_none()
        );
        message.ack.expect("QoS 1").ack();
        assert_eq!(
            peer.pubacks_within(Duration::from_millis(500)).await,
            vec![1]
        );
        subscriber.close().await;
    }
}
