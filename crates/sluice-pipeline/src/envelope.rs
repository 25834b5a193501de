//! What travels: the envelope, its acknowledgement and the outcome that settles it.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use sluice_types::{Document, Uplink};

/// How a message was settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Every sink the message was routed to accepted it.
    Delivered {
        /// The outputs that accepted it.
        outputs: Vec<String>,
    },
    /// The router sent it nowhere (or the binding has no sinks).
    Dropped {
        /// The router's reasons, one per dropped output.
        reasons: Vec<String>,
    },
    /// It is in the dead-letter queue.
    DeadLettered {
        /// The dead-letter entry.
        id: i64,
        /// The failure's kind (`trap`, `fuel-exhausted`, `sink-failed`, ...).
        kind: String,
        /// The failure, as text.
        reason: String,
    },
}

impl Outcome {
    /// `delivered`, `dropped` or `dead-lettered`: the metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Dropped { .. } => "dropped",
            Outcome::DeadLettered { .. } => "dead-lettered",
        }
    }
}

/// Called once when the message is settled. A message whose `Ack` is dropped uncalled was
/// not settled (the dead-letter write itself failed, or the service stopped first): the
/// source must not acknowledge it upstream, so it is delivered again.
pub struct Ack(Option<Settle>);

/// The callback an [`Ack`] runs.
type Settle = Box<dyn FnOnce(&Outcome) + Send>;

impl Ack {
    /// An acknowledgement that runs `f` with the outcome.
    pub fn new(f: impl FnOnce(&Outcome) + Send + 'static) -> Self {
        Self(Some(Box::new(f)))
    }

    /// An acknowledgement nobody waits for.
    pub fn none() -> Self {
        Self(None)
    }

    /// Settles the message.
    pub fn settle(mut self, outcome: &Outcome) {
        if let Some(f) = self.0.take() {
            f(outcome);
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Ack(pending)"
        } else {
            "Ack(none)"
        })
    }
}

/// A message on its way through a binding. Created once at the source; stages add results,
/// the payload is never copied.
#[derive(Debug)]
pub struct Envelope {
    /// The tenant that owns the binding.
    pub tenant: String,
    /// The binding.
    pub binding: String,
    /// The message.
    pub uplink: Uplink,
    /// Settles the message upstream.
    pub ack: Ack,
    /// Delivery attempts before this one (a replayed dead letter carries its count).
    pub attempts: u32,
    /// Set when the source could not make a proper message of what it received (e.g. a
    /// topic without a device id): the message is dead-lettered with this reason.
    pub refused: Option<String>,
    /// When the source handed the message over (latency is measured from here).
    pub accepted_at: std::time::Instant,
    /// The codec's document, once decoded: the live view shows it.
    pub decoded: Option<Arc<Document>>,
}

impl Envelope {
    /// An envelope for `uplink` on `tenant`'s `binding`.
    pub fn new(
        tenant: impl Into<String>,
        binding: impl Into<String>,
        uplink: Uplink,
        ack: Ack,
    ) -> Self {
        Self {
            tenant: tenant.into(),
            binding: binding.into(),
            uplink,
            ack,
            attempts: 0,
            refused: None,
            accepted_at: std::time::Instant::now(),
            decoded: None,
        }
    }
}
