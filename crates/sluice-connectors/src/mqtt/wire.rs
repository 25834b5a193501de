//! One MQTT connection on the wire: connect, read whole packets, write a batch at once.

use std::time::Duration;

use bytes::BytesMut;
use rumqttc::{ConnectReturnCode, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{MAX_PACKET, MqttSettings};

/// How long connecting (TCP and CONNACK) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one batch may take to write before the connection counts as dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a connection failed or ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// The URL is wrong.
    #[error(transparent)]
    Url(#[from] super::MqttUrlError),
    /// A socket error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The broker answered CONNECT with a refusal.
    #[error("the broker refused the connection: {0:?}")]
    Refused(ConnectReturnCode),
    /// The broker sent something this client cannot accept.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The broker went silent.
    #[error("{0}")]
    Timeout(&'static str),
    /// The broker closed the connection.
    #[error("the broker closed the connection")]
    Closed,
}

/// A connected MQTT session.
pub(crate) struct Wire {
    stream: TcpStream,
    incoming: BytesMut,
    /// Packets encoded and not yet written.
    pub(crate) outgoing: BytesMut,
}

impl Wire {
    /// Connects, sends CONNECT and waits for CONNACK. Returns the wire and whether the
    /// broker kept a session from before.
    pub(crate) async fn connect(
        settings: &MqttSettings,
        suffix: &str,
        clean: bool,
    ) -> Result<(Self, bool), WireError> {
        let (host, port) = settings.host_port()?;
        let connecting = async {
            let stream = TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            let mut wire = Self {
                stream,
                incoming: BytesMut::with_capacity(64 * 1024),
                outgoing: BytesMut::with_capacity(64 * 1024),
            };
            wire.push(&Packet::Connect(settings.connect_packet(suffix, clean)))?;
            wire.flush().await?;
            match wire.next_packet().await? {
                Packet::ConnAck(ack) if ack.code == ConnectReturnCode::Success => {
                    Ok((wire, ack.session_present))
                }
                Packet::ConnAck(ack) => Err(WireError::Refused(ack.code)),
                other => Err(WireError::Protocol(format!(
                    "expected CONNACK, got {other:?}"
                ))),
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| WireError::Timeout("the broker did not answer CONNECT"))?
    }

    /// Encodes `packet` into the outgoing batch.
    pub(crate) fn push(&mut self, packet: &Packet) -> Result<(), WireError> {
        packet
            .write(&mut self.outgoing, MAX_PACKET)
            .map(|_| ())
            .map_err(|e| WireError::Protocol(format!("encoding {packet:?}: {e}")))
    }

    /// Writes the outgoing batch with as few system calls as the socket allows.
    pub(crate) async fn flush(&mut self) -> Result<(), WireError> {
        if self.outgoing.is_empty() {
            return Ok(());
        }
        let batch = self.outgoing.split();
        tokio::time::timeout(WRITE_TIMEOUT, self.stream.write_all(&batch))
            .await
            .map_err(|_| WireError::Timeout("the broker stopped reading"))??;
        // Reuse the allocation when nothing else holds it.
        let mut batch = batch;
        batch.clear();
        self.outgoing.unsplit(batch);
        Ok(())
    }

    /// Reads whatever the socket has (waiting for at least one byte). Cancel safe: when it
    /// loses a `select!`, nothing was read.
    pub(crate) async fn read_more(&mut self) -> Result<(), WireError> {
        self.incoming.reserve(16 * 1024);
        match self.stream.read_buf(&mut self.incoming).await? {
            0 => Err(WireError::Closed),
            _ => Ok(()),
        }
    }

    /// The next whole packet already read, if any.
    pub(crate) fn take_packet(&mut self) -> Result<Option<Packet>, WireError> {
        match Packet::read(&mut self.incoming, MAX_PACKET) {
            Ok(packet) => Ok(Some(packet)),
            Err(rumqttc::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(WireError::Protocol(e.to_string())),
        }
    }

    /// Waits for the next whole packet.
    async fn next_packet(&mut self) -> Result<Packet, WireError> {
        loop {
            if let Some(packet) = self.take_packet()? {
                return Ok(packet);
            }
            self.read_more().await?;
        }
    }
}

/// The pause before reconnect attempt `failures` (100 ms doubling to 6.4 s).
pub(crate) fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64 << failures.clamp(1, 7).saturating_sub(1))
}
