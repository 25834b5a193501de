use crate::OutputFormat;

/// Why a document could not be encoded in a sink's format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The serializer of a binary or JSON format failed.
    #[error("could not encode as {format}: {reason}")]
    Serialize {
        /// The format asked for.
        format: OutputFormat,
        /// What the serializer reported.
        reason: String,
    },
    /// Line protocol needs at least one field, and the document has no number, boolean or
    /// string in it.
    #[error(
        "line protocol needs at least one field, but the document of device `{device_id}` has no number, boolean or string"
    )]
    NoFields {
        /// The device whose document was empty.
        device_id: String,
    },
    /// Two leaves flatten to the same name (for example `{"a_b": 1, "a": {"b": 2}}`).
    #[error(
        "two values of the document flatten to the same name `{name}`; rename one in the codec"
    )]
    DuplicateName {
        /// The flattened name.
        name: String,
    },
    /// A SenML name (base name + name) uses characters RFC 8428 does not allow.
    #[error(
        "`{name}` is not a valid SenML name: it must start with a letter or digit and use only letters, digits and `-:./_`"
    )]
    InvalidSenmlName {
        /// The full name, base name included.
        name: String,
    },
    /// Line protocol cannot carry a line break in a name, tag or value.
    #[error("line protocol cannot carry a line break, found one in {element} `{text}`")]
    LineBreak {
        /// Which part of the line: measurement, tag key, tag value, field key or field value.
        element: &'static str,
        /// The offending text.
        text: String,
    },
    /// The measurement (the binding name) is empty.
    #[error("line protocol needs a measurement, but the binding name is empty")]
    EmptyMeasurement,
    /// The receive time does not fit a line-protocol timestamp (signed 64-bit nanoseconds).
    #[error(
        "received_at_ms {received_at_ms} does not fit a nanosecond timestamp (after year 2262)"
    )]
    TimestampOutOfRange {
        /// The receive time in milliseconds since the Unix epoch.
        received_at_ms: u64,
    },
}

/// A format name that is not one of [`OutputFormat::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown output format `{value}`; expected one of: json, cbor, msgpack, senml, influx")]
pub struct UnknownFormat {
    /// The name that was given.
    pub value: String,
}
