use std::io;
use std::path::PathBuf;

/// Why a broker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker's executable is not installed.
    #[error("`{binary}` was not found on PATH or in {searched}; install it with `{install}`")]
    BinaryNotFound {
        /// Executable name, e.g. `mosquitto`.
        binary: &'static str,
        /// The fixed directories searched after PATH.
        searched: String,
        /// The command that installs it.
        install: &'static str,
    },
    /// No free loopback port could be reserved.
    #[error("no free TCP port on 127.0.0.1: {0}")]
    NoFreePort(#[source] io::Error),
    /// The broker's temporary directory or config file could not be written.
    #[error("cannot prepare the working directory for {broker}: {source}")]
    WorkDir {
        /// Broker name.
        broker: &'static str,
        /// Underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The executable exists but could not be started.
    #[error("cannot start {}: {source}", binary.display())]
    Spawn {
        /// Path of the executable.
        binary: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The broker process ended before it accepted connections.
    #[error(
        "{broker} exited ({status}) before accepting connections on 127.0.0.1:{port}; log tail:\n{log_tail}"
    )]
    Exited {
        /// Broker name.
        broker: &'static str,
        /// The port it was told to listen on.
        port: u16,
        /// Exit status as text.
        status: String,
        /// Last lines of its log and stderr.
        log_tail: String,
    },
    /// The broker kept running but did not accept connections in time.
    #[error(
        "{broker} did not accept connections on 127.0.0.1:{port} within {timeout_ms} ms; log tail:\n{log_tail}"
    )]
    NotReady {
        /// Broker name.
        broker: &'static str,
        /// The port it was told to listen on.
        port: u16,
        /// How long we waited.
        timeout_ms: u128,
        /// Last lines of its log and stderr.
        log_tail: String,
    },
}

/// Why a probe (test client) operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The broker URL could not be understood.
    #[error("invalid broker url `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The MQTT connection was refused or failed before CONNACK.
    #[error("cannot connect to MQTT broker {url}: {reason}")]
    MqttConnect {
        /// Broker URL.
        url: String,
        /// The client library's error, as text.
        reason: String,
    },
    /// The MQTT connection ended; every pending acknowledgement fails with this.
    #[error("MQTT connection lost: {reason}")]
    MqttDisconnected {
        /// Why the event loop stopped.
        reason: String,
    },
    /// The MQTT client refused a topic name or filter (empty, or wildcards in a topic name).
    #[error("invalid MQTT topic or filter `{topic}`")]
    InvalidTopic {
        /// The topic or filter as given.
        topic: String,
    },
    /// The broker refused a subscription in its SUBACK.
    #[error("MQTT broker rejected the subscription to `{filter}`")]
    SubscribeRejected {
        /// The topic filter.
        filter: String,
    },
    /// A broker acknowledgement (CONNACK, SUBACK, PUBACK, PUBCOMP) did not arrive in time.
    #[error("no {what} from the broker within {timeout_ms} ms")]
    AckTimeout {
        /// Which acknowledgement.
        what: &'static str,
        /// How long we waited.
        timeout_ms: u128,
    },
    /// Connecting to the NATS server failed.
    #[error("cannot connect to NATS server {url}: {source}")]
    NatsConnect {
        /// Server URL.
        url: String,
        /// The client library's error.
        #[source]
        source: async_nats::ConnectError,
    },
    /// Subscribing on NATS failed.
    #[error("cannot subscribe to NATS subject `{subject}`: {source}")]
    NatsSubscribe {
        /// The subject.
        subject: String,
        /// The client library's error.
        #[source]
        source: async_nats::SubscribeError,
    },
    /// Publishing on NATS failed.
    #[error("cannot publish to NATS subject `{subject}`: {source}")]
    NatsPublish {
        /// The subject.
        subject: String,
        /// The client library's error.
        #[source]
        source: async_nats::PublishError,
    },
    /// Flushing the NATS connection's write buffer failed.
    #[error("cannot flush the NATS connection: {0}")]
    NatsFlush(#[source] async_nats::client::FlushError),
    /// The NATS connection was closed.
    #[error("the NATS connection is closed")]
    NatsClosed,
}
