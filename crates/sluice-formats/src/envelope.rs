use std::collections::BTreeMap;

use serde::Serialize;
use sluice_types::Document;

use crate::Envelope;

/// The object that JSON, CBOR and MessagePack carry.
#[derive(Serialize)]
pub(crate) struct Record<'a> {
    device_id: &'a str,
    port: u16,
    received_at_ms: u64,
    tenant: &'a str,
    binding: &'a str,
    /// A map, so a key the source repeated appears once (the last value wins).
    metadata: BTreeMap<&'a str, &'a str>,
    data: &'a Document,
}

impl<'a> Record<'a> {
    pub(crate) fn new(envelope: &Envelope<'a>) -> Self {
        let uplink = envelope.uplink;
        Self {
            device_id: &uplink.device_id,
            port: uplink.port,
            received_at_ms: uplink.received_at_ms,
            tenant: envelope.tenant,
            binding: envelope.binding,
            metadata: uplink
                .metadata
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            data: envelope.document,
        }
    }
}
