//! Real brokers for tests: starts `mosquitto` and `nats-server` on free loopback ports, each in
//! its own temporary directory, and stops them when dropped. The probes are small clients that
//! publish, subscribe and wait for acknowledgements, so a test can drive a broker end to end.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sluice_brokers::{Mosquitto, MqttProbe, QoS};
//! use std::time::Duration;
//!
//! let broker = Mosquitto::start()?;
//! let mut probe = MqttProbe::connect(&broker.url()).await?;
//! probe.subscribe("devices/#").await?;
//! probe.publish("devices/a", b"hello".to_vec(), QoS::AtLeastOnce).await?;
//! let received = probe.collect(1, Duration::from_secs(5)).await;
//! assert_eq!(received, vec![("devices/a".to_string(), b"hello".to_vec())]);
//! # Ok(())
//! # }
//! ```

mod error;
mod mqtt;
mod nats;
mod process;

pub use error::{BrokerError, ProbeError};
pub use mqtt::MqttProbe;
pub use nats::NatsProbe;
pub use process::{Mosquitto, NatsServer};
/// MQTT quality of service, re-exported so callers need not depend on `rumqttc`.
pub use rumqttc::QoS;

use std::net::{Ipv4Addr, TcpListener};

/// Asks the kernel for a currently free TCP port on 127.0.0.1.
///
/// The port is released before returning, so another process may take it; the broker starters
/// retry on "address already in use" for that reason.
pub fn free_port() -> Result<u16, BrokerError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(BrokerError::NoFreePort)?;
    let port = listener
        .local_addr()
        .map_err(BrokerError::NoFreePort)?
        .port();
    Ok(port)
}
