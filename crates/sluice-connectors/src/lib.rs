//! Sluice's connectors: where messages come from and where documents go.
//!
//! - [`spec`]: the `sources` and `sinks` of a binding as users write them, parsed and
//!   checked with errors that name the field ([`parse_binding_io`]).
//! - [`mqtt`]: a subscriber that holds QoS 1 messages unacknowledged until they are settled,
//!   and a publisher that waits for the broker's acknowledgement.
//! - [`nats`]: core NATS publishing and subscriptions.
//! - [`sink`]: opened sinks (MQTT, NATS, webhook, file, stdout) with retries and
//!   exponential backoff.
//! - [`topic`]: topic filters, device-id checks and topic templates.

pub mod mqtt;
pub mod nats;
pub mod sink;
pub mod spec;
pub mod topic;

pub use sink::{DeliveryError, Sink, SinkContext, SinkError, SinkSetupError};
pub use spec::{BindingIo, IoConfigError, SinkSpec, SourceSpec, parse_binding_io};
