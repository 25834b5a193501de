//! MQTT connections: a subscriber that holds each QoS 1 message unacknowledged until the
//! pipeline has settled it, and a publisher that reports a publish as accepted only when the
//! broker acknowledged it.
//!
//! The two are separate connections on purpose: the subscriber stops reading when the
//! pipeline is full (backpressure reaches the broker through TCP), and the publisher's
//! acknowledgements must keep flowing while it does.
//!
//! Both speak MQTT 3.1.1 (packets encoded and decoded by `rumqttc`'s codec) over their own
//! connection task, which batches: everything queued when the task wakes (acknowledgements,
//! publishes) is encoded into one buffer and written with one system call, and every packet
//! a read brings in is handled before the next write. Under load that turns one loopback
//! send per packet into one per wake-up.

use rumqttc::Connect;
use serde::{Deserialize, Serialize};

mod publisher;
mod subscriber;
mod wire;

pub use publisher::{MqttPublisher, PublishError};
pub use subscriber::{MqttAck, MqttMessage, MqttSubscriber};

/// The largest packet sent or accepted (1 MiB).
const MAX_PACKET: usize = 1 << 20;

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
    /// How long a subscriber's acknowledgement may wait to leave with others, in
    /// milliseconds (0: each leaves at once). Acknowledgements also leave with the next
    /// write the connection makes, or once 8 are waiting.
    #[serde(default = "default_ack_delay")]
    pub ack_delay_ms: u64,
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
fn default_ack_delay() -> u64 {
    1
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
            ack_delay_ms: default_ack_delay(),
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

    /// The CONNECT packet of the connection named `<client_id>-<suffix>`.
    fn connect_packet(&self, suffix: &str, clean: bool) -> Connect {
        let mut connect = Connect::new(format!("{}-{suffix}", self.client_id));
        connect.keep_alive = u16::try_from(self.keep_alive()).unwrap_or(u16::MAX);
        connect.clean_session = clean;
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            connect.set_login(user.clone(), password.clone());
        }
        connect
    }

    /// The keep-alive interval in seconds (at least 5).
    fn keep_alive(&self) -> u64 {
        self.keep_alive_s.max(5)
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
