//! The wire protocol between the supervisor and a worker process.
//!
//! Frames travel over a Unix stream socket: a 4-byte big-endian length, then that many bytes
//! of CBOR (RFC 8949, via `ciborium`). A frame longer than [`MAX_FRAME_BYTES`], a truncated
//! frame, bytes that are not a message, or bytes left over after the message are
//! [`ProtocolError`]s; the supervisor then kills the worker, since it can no longer trust it.
//!
//! CBOR rather than JSON because components and state values are raw bytes (CBOR byte
//! strings, not arrays of numbers); CBOR rather than postcard or bincode because the shared
//! types need a self-describing format: `GuestFailure` is an internally tagged enum and a
//! `Document` holds arbitrary JSON values, and both deserialize through `deserialize_any`.
//!
//! The conversation is strictly request → reply, one call at a time: the supervisor sends a
//! [`ToWorker`] request; while it runs, the worker may send any number of
//! [`FromWorker::StateOp`] frames, each answered by one [`ToWorker::StateReply`]; then the
//! worker sends the reply matching the request. `Unload` and `Shutdown` have no reply. The
//! first frame of every connection is the worker's [`FromWorker::Ready`], sent once the
//! process is hardened.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use sluice_runtime::CallReport;
use sluice_types::{
    Decision, Document, Downlink, EncodedDownlink, GuestFailure, ModulePolicy, ModuleRef, Uplink,
};

/// Largest frame payload either side sends or accepts, in bytes (16 MiB). A component bigger
/// than this (minus a few bytes of framing) cannot be loaded in a worker.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The peer closed the connection cleanly, between two frames.
    #[error("the peer closed the connection")]
    Closed,
    /// The connection ended in the middle of a frame.
    #[error(
        "the connection ended in the middle of a frame ({read_bytes} of {expected_bytes} bytes)"
    )]
    Truncated {
        /// Bytes received of the header or payload.
        read_bytes: usize,
        /// Bytes the header or payload should have had.
        expected_bytes: usize,
    },
    /// A frame's length is above [`MAX_FRAME_BYTES`] (or zero).
    #[error("frame of {size_bytes} bytes refused (must be 1 to {limit_bytes} bytes)")]
    FrameSize {
        /// The length the frame announced or would have had.
        size_bytes: u64,
        /// [`MAX_FRAME_BYTES`].
        limit_bytes: u64,
    },
    /// The payload is not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A message could not be encoded.
    #[error("cannot encode a message: {0}")]
    Encode(String),
    /// The socket failed (including read and write timeouts).
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

impl ProtocolError {
    /// Whether this is a socket timeout (`SO_RCVTIMEO` / `SO_SNDTIMEO` expired).
    pub fn is_timeout(&self) -> bool {
        matches!(self, ProtocolError::Io(e) if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ))
    }
}

/// A message from the supervisor to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToWorker {
    /// Validate, compile and instantiate a module for one binding; the worker answers
    /// [`FromWorker::Loaded`]. Loading into a slot that is in use replaces its instance.
    Load {
        /// Names the instance in later requests.
        slot: u64,
        /// The module's id and version.
        module: ModuleRef,
        /// The component bytes.
        #[serde(with = "serde_bytes")]
        component: Vec<u8>,
        /// What the runtime enforces on it.
        policy: ModulePolicy,
        /// The binding's configuration, read by the guest through `sluice:codec/config`.
        config: BTreeMap<String, String>,
    },
    /// Drop a slot's instance. No reply.
    Unload {
        /// The slot.
        slot: u64,
    },
    /// Decode an uplink with a codec; the worker answers [`FromWorker::Decoded`].
    Decode {
        /// Echoed in the reply.
        call_id: u64,
        /// The codec's slot.
        slot: u64,
        /// The message.
        uplink: Uplink,
    },
    /// Encode a downlink with a codec; the worker answers [`FromWorker::Encoded`].
    Encode {
        /// Echoed in the reply.
        call_id: u64,
        /// The codec's slot.
        slot: u64,
        /// The document to encode.
        downlink: Downlink,
    },
    /// Route a decoded message with a router; the worker answers [`FromWorker::Routed`].
    Route {
        /// Echoed in the reply.
        call_id: u64,
        /// The router's slot.
        slot: u64,
        /// The message.
        uplink: Uplink,
        /// Its decoded document.
        document: Document,
    },
    /// The answer to a [`FromWorker::StateOp`]: the state store's result, or its error text.
    StateReply {
        /// The operation answered.
        op_id: u64,
        /// What the supervisor's state store returned.
        result: Result<StateValue, String>,
    },
    /// Exit cleanly. No reply.
    Shutdown,
}

/// A message from a worker to the supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FromWorker {
    /// The first frame: the process is hardened and reads requests from now on.
    Ready {
        /// What the sandbox enforces.
        sandbox: SandboxReport,
    },
    /// The result of [`ToWorker::Load`].
    Loaded {
        /// The slot loaded.
        slot: u64,
        /// `Err` when the runtime refused the module.
        result: Result<(), GuestFailure>,
    },
    /// The result of [`ToWorker::Decode`].
    Decoded {
        /// The request's id.
        call_id: u64,
        /// The document or the typed failure.
        result: Result<Document, GuestFailure>,
        /// What the call cost and logged.
        report: CallReport,
    },
    /// The result of [`ToWorker::Encode`].
    Encoded {
        /// The request's id.
        call_id: u64,
        /// The frame or the typed failure.
        result: Result<EncodedDownlink, GuestFailure>,
        /// What the call cost and logged.
        report: CallReport,
    },
    /// The result of [`ToWorker::Route`].
    Routed {
        /// The request's id.
        call_id: u64,
        /// The decisions or the typed failure.
        result: Result<Vec<Decision>, GuestFailure>,
        /// What the call cost and logged.
        report: CallReport,
    },
    /// A state operation of the guest running the current call, for the slot's state store
    /// (which lives in the supervisor). The worker blocks until the [`ToWorker::StateReply`].
    StateOp {
        /// Echoed in the reply.
        op_id: u64,
        /// The slot whose store is meant; must be the slot of the call in flight.
        slot: u64,
        /// The operation.
        op: StateOp,
    },
}

/// One operation on per-device state, as [`sluice_runtime::StateStore`] defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateOp {
    /// Read a key.
    Get {
        /// The device.
        device: String,
        /// The key.
        key: String,
    },
    /// Store a key unless the device would exceed its quota.
    Set {
        /// The device.
        device: String,
        /// The key.
        key: String,
        /// The value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        /// The device's quota; the supervisor never applies more than the slot's policy.
        max_device_bytes: u64,
    },
    /// Remove a key.
    Delete {
        /// The device.
        device: String,
        /// The key.
        key: String,
    },
}

/// What a state operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateValue {
    /// The answer to [`StateOp::Get`].
    Value(#[serde(with = "serde_bytes")] Option<Vec<u8>>),
    /// The answer to [`StateOp::Set`]: whether the value was stored.
    Stored(bool),
    /// The answer to [`StateOp::Delete`].
    Deleted,
}

/// What the worker's sandbox enforces, reported in [`FromWorker::Ready`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxReport {
    /// Landlock status: `fully enforced (ABI v6)`, `partially enforced …`, or `not
    /// enforced: …` when the kernel lacks it.
    pub landlock: String,
    /// Whether landlock restricts every requested right (filesystem, TCP, scopes).
    pub landlock_fully_enforced: bool,
    /// System calls the seccomp filter lets run (some only with checked arguments).
    pub seccomp_allowed_syscalls: u32,
    /// System calls it answers with an error without running them. Any other system call
    /// kills the process with `SIGSYS`.
    pub seccomp_refused_syscalls: u32,
    /// `RLIMIT_DATA` in force, in bytes.
    pub max_data_bytes: u64,
    /// `RLIMIT_AS` in force, in bytes, when one is set.
    pub max_address_space_bytes: Option<u64>,
    /// `RLIMIT_NOFILE` in force.
    pub max_open_files: u64,
}

/// Encodes `message` as one frame: the 4-byte big-endian length, then the CBOR payload.
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, ProtocolError> {
    let mut frame = vec![0u8; 4];
    ciborium::into_writer(message, &mut frame).map_err(|e| ProtocolError::Encode(e.to_string()))?;
    let size = frame.len() - 4;
    let too_large = || ProtocolError::FrameSize {
        size_bytes: size as u64,
        limit_bytes: MAX_FRAME_BYTES as u64,
    };
    if size > MAX_FRAME_BYTES {
        return Err(too_large());
    }
    let header = u32::try_from(size).map_err(|_| too_large())?.to_be_bytes();
    frame[..4].copy_from_slice(&header);
    Ok(frame)
}

/// Encodes `message` and writes it as one frame (header and payload in one write).
pub fn write_frame<W: Write, T: Serialize>(
    writer: &mut W,
    message: &T,
) -> Result<(), ProtocolError> {
    let frame = encode_frame(message)?;
    writer.write_all(&frame)?;
    writer.flush()?;
    Ok(())
}

/// Reads one frame and decodes it.
pub fn read_frame<R: Read, T: for<'de> Deserialize<'de>>(
    reader: &mut R,
) -> Result<T, ProtocolError> {
    let mut header = [0u8; 4];
    let read = fill(reader, &mut header)?;
    if read == 0 {
        return Err(ProtocolError::Closed);
    }
    if read < header.len() {
        return Err(ProtocolError::Truncated {
            read_bytes: read,
            expected_bytes: header.len(),
        });
    }
    let size = u32::from_be_bytes(header) as usize;
    if size == 0 || size > MAX_FRAME_BYTES {
        return Err(ProtocolError::FrameSize {
            size_bytes: size as u64,
            limit_bytes: MAX_FRAME_BYTES as u64,
        });
    }
    let mut payload = vec![0u8; size];
    let read = fill(reader, &mut payload)?;
    if read < size {
        return Err(ProtocolError::Truncated {
            read_bytes: read,
            expected_bytes: size,
        });
    }
    let mut rest = payload.as_slice();
    let message =
        ciborium::from_reader(&mut rest).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ProtocolError::Malformed(format!(
            "{} bytes after the message",
            rest.len()
        )));
    }
    Ok(message)
}

/// Reads until `buf` is full or the peer closes; returns the bytes read.
fn fill<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize, ProtocolError> {
    let mut read = 0;
    while read < buf.len() {
        match reader.read(&mut buf[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::{LogLevel, LogLine, MetricUpdate};
    use sluice_types::{Limits, TrapKind};

    fn round_trip<T: Serialize + for<'de> Deserialize<'de>>(message: &T) -> T {
        let mut bytes = Vec::new();
        write_frame(&mut bytes, message).expect("encodes");
        read_frame(&mut bytes.as_slice()).expect("decodes")
    }

    fn uplink() -> Uplink {
        Uplink {
            device_id: "dev-1".into(),
            port: 2,
            received_at_ms: 1_700_000_000_000,
            payload: vec![0, 1, 0xff],
            metadata: vec![("site".into(), "plant".into())],
        }
    }

    fn document() -> Document {
        Document::from_json_slice(
            br#"{"t": 21.5, "n": 3, "neg": -4, "nested": {"a": [1, null, "x"]}}"#,
        )
        .expect("valid")
    }

    #[test]
    fn every_request_survives_a_round_trip() {
        let module = ModuleRef::new("codec", "3");
        let requests = [
            ToWorker::Load {
                slot: 7,
                module,
                component: vec![0, 0x61, 0x73, 0x6d, 0xff],
                policy: ModulePolicy {
                    limits: Limits {
                        deadline_ms: 5,
                        ..Limits::default()
                    },
                    fresh_instance_per_call: true,
                    ..ModulePolicy::default()
                },
                config: [("k".to_string(), "v".to_string())].into(),
            },
            ToWorker::Unload { slot: 7 },
            ToWorker::Decode {
                call_id: 1,
                slot: 7,
                uplink: uplink(),
            },
            ToWorker::Encode {
                call_id: 2,
                slot: 7,
                downlink: Downlink {
                    device_id: "d".into(),
                    port: 1,
                    document: document(),
                    metadata: vec![],
                },
            },
            ToWorker::Route {
                call_id: 3,
                slot: 8,
                uplink: uplink(),
                document: document(),
            },
            ToWorker::StateReply {
                op_id: 4,
                result: Ok(StateValue::Value(Some(vec![1, 2]))),
            },
            ToWorker::StateReply {
                op_id: 5,
                result: Ok(StateValue::Value(None)),
            },
            ToWorker::StateReply {
                op_id: 6,
                result: Err("disk on fire".into()),
            },
            ToWorker::Shutdown,
        ];
        for request in requests {
            assert_eq!(round_trip(&request), request);
        }
    }

    #[test]
    fn every_reply_survives_a_round_trip() {
        let module = ModuleRef::new("codec", "3");
        let report = CallReport {
            fuel_consumed: 42,
            duration: std::time::Duration::from_micros(1234),
            instantiated: true,
            logs: vec![LogLine {
                level: LogLevel::Warn,
                message: "hi".into(),
            }],
            logs_dropped: 1,
            metrics: vec![
                MetricUpdate::Counter {
                    name: "c".into(),
                    delta: 2,
                },
                MetricUpdate::Gauge {
                    name: "g".into(),
                    value: 0.25,
                },
            ],
            metrics_dropped: 0,
        };
        let replies = [
            FromWorker::Ready {
                sandbox: SandboxReport {
                    landlock: "fully enforced".into(),
                    landlock_fully_enforced: true,
                    seccomp_allowed_syscalls: 40,
                    seccomp_refused_syscalls: 4,
                    max_data_bytes: 1 << 30,
                    max_address_space_bytes: None,
                    max_open_files: 64,
                },
            },
            FromWorker::Loaded {
                slot: 1,
                result: Err(GuestFailure::Rejected {
                    module: module.clone(),
                    error: sluice_types::ValidationError::NotWasm,
                }),
            },
            FromWorker::Decoded {
                call_id: 1,
                result: Ok(document()),
                report: report.clone(),
            },
            FromWorker::Decoded {
                call_id: 2,
                result: Err(GuestFailure::Trap {
                    module: module.clone(),
                    kind: TrapKind::Unreachable,
                    message: "boom".into(),
                    backtrace: None,
                }),
                report: report.clone(),
            },
            FromWorker::Routed {
                call_id: 3,
                result: Ok(vec![Decision {
                    output: "alerts".into(),
                    document: Some(document()),
                    drop_reason: None,
                }]),
                report: report.clone(),
            },
            FromWorker::Encoded {
                call_id: 4,
                result: Ok(EncodedDownlink {
                    port: 3,
                    payload: vec![9, 8],
                }),
                report,
            },
            FromWorker::StateOp {
                op_id: 9,
                slot: 1,
                op: StateOp::Set {
                    device: "d".into(),
                    key: "count".into(),
                    value: 7u64.to_le_bytes().to_vec(),
                    max_device_bytes: 4096,
                },
            },
        ];
        for reply in replies {
            assert_eq!(round_trip(&reply), reply);
        }
    }

    #[test]
    fn component_bytes_travel_as_a_byte_string_not_an_array() {
        let component = vec![0xAB; 100_000];
        let mut bytes = Vec::new();
        write_frame(
            &mut bytes,
            &ToWorker::Load {
                slot: 1,
                module: ModuleRef::new("m", "1"),
                component,
                policy: ModulePolicy::default(),
                config: BTreeMap::new(),
            },
        )
        .expect("encodes");
        // One byte per byte plus the policy and framing, not two per byte.
        assert!(bytes.len() < 101_000, "{} bytes", bytes.len());
    }

    #[test]
    fn read_refuses_an_oversized_frame_before_reading_it() {
        let header = (MAX_FRAME_BYTES as u32 + 1).to_be_bytes();
        let err = read_frame::<_, ToWorker>(&mut header.as_slice()).expect_err("too large");
        assert!(
            matches!(err, ProtocolError::FrameSize { size_bytes, .. } if size_bytes == MAX_FRAME_BYTES as u64 + 1),
            "{err}"
        );
    }

    #[test]
    fn write_refuses_an_oversized_message() {
        let err = write_frame(
            &mut Vec::new(),
            &ToWorker::Load {
                slot: 1,
                module: ModuleRef::new("m", "1"),
                component: vec![0; MAX_FRAME_BYTES],
                policy: ModulePolicy::default(),
                config: BTreeMap::new(),
            },
        )
        .expect_err("too large");
        assert!(matches!(err, ProtocolError::FrameSize { .. }), "{err}");
    }

    #[test]
    fn read_reports_clean_close_truncation_and_garbage() {
        assert!(matches!(
            read_frame::<_, ToWorker>(&mut [].as_slice()),
            Err(ProtocolError::Closed)
        ));
        assert!(matches!(
            read_frame::<_, ToWorker>(&mut [0u8, 0].as_slice()),
            Err(ProtocolError::Truncated {
                read_bytes: 2,
                expected_bytes: 4
            })
        ));
        let mut cut = Vec::new();
        write_frame(&mut cut, &ToWorker::Shutdown).expect("encodes");
        cut.pop();
        assert!(matches!(
            read_frame::<_, ToWorker>(&mut cut.as_slice()),
            Err(ProtocolError::Truncated { .. })
        ));
        let garbage = [0u8, 0, 0, 3, 0xff, 0xfe, 0xfd];
        assert!(matches!(
            read_frame::<_, ToWorker>(&mut garbage.as_slice()),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            read_frame::<_, ToWorker>(&mut [0u8, 0, 0, 0].as_slice()),
            Err(ProtocolError::FrameSize { size_bytes: 0, .. })
        ));
    }

    #[test]
    fn read_refuses_trailing_bytes_and_invalid_documents() {
        let mut frame = Vec::new();
        write_frame(&mut frame, &ToWorker::Shutdown).expect("encodes");
        let mut payload = frame[4..].to_vec();
        payload.push(0);
        let mut padded = (payload.len() as u32).to_be_bytes().to_vec();
        padded.extend(payload);
        assert!(matches!(
            read_frame::<_, ToWorker>(&mut padded.as_slice()),
            Err(ProtocolError::Malformed(_))
        ));

        // A document that is not a map is refused while decoding, like any other document.
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        enum Forged {
            Decoded {
                call_id: u64,
                result: Result<Vec<u8>, ()>,
                report: CallReport,
            },
        }
        let mut forged = Vec::new();
        write_frame(
            &mut forged,
            &Forged::Decoded {
                call_id: 1,
                result: Ok(vec![1, 2]),
                report: CallReport::default(),
            },
        )
        .expect("encodes");
        assert!(matches!(
            read_frame::<_, FromWorker>(&mut forged.as_slice()),
            Err(ProtocolError::Malformed(_))
        ));
    }
}
