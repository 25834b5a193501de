//! Each output format, specified on a Cayenne-like document.

use serde_json::{Value, json};
use sluice_formats::{Envelope, FormatError, OutputFormat, UnknownFormat, content_type, encode};
use sluice_types::{Document, Uplink};

const RECEIVED_AT_MS: u64 = 1_700_000_000_123;

fn cayenne() -> Document {
    Document::from_value(json!({
        "temperature_3": 27.2,
        "humidity_5": 50.0,
        "gps_1": {"latitude": 42.3519, "longitude": -87.9094, "altitude": 10.0},
        "ok": true,
        "name": "a b,c"
    }))
    .expect("a valid document")
}

fn uplink() -> Uplink {
    Uplink {
        device_id: "eui-0004a30b001c0530".into(),
        port: 1,
        received_at_ms: RECEIVED_AT_MS,
        payload: vec![0x03, 0x67, 0x01, 0x10],
        metadata: vec![
            ("rssi".into(), "-97".into()),
            ("gateway".into(), "gw 1,north".into()),
        ],
    }
}

fn encode_doc(
    format: OutputFormat,
    uplink: &Uplink,
    document: &Document,
) -> Result<Vec<u8>, FormatError> {
    encode(
        format,
        &Envelope {
            uplink,
            document,
            tenant: "acme",
            binding: "field-sensors",
        },
    )
}

fn expected_envelope(document: &Document) -> Value {
    json!({
        "device_id": "eui-0004a30b001c0530",
        "port": 1,
        "received_at_ms": RECEIVED_AT_MS,
        "tenant": "acme",
        "binding": "field-sensors",
        "metadata": {"gateway": "gw 1,north", "rssi": "-97"},
        "data": document.to_value(),
    })
}

#[test]
fn json_carries_the_envelope_and_the_document() {
    let doc = cayenne();
    let bytes = encode_doc(OutputFormat::Json, &uplink(), &doc).expect("encodes");
    let back: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(back, expected_envelope(&doc));
}

#[test]
fn cbor_decodes_back_to_the_same_value() {
    let doc = cayenne();
    let bytes = encode_doc(OutputFormat::Cbor, &uplink(), &doc).expect("encodes");
    let back: Value = ciborium::from_reader(bytes.as_slice()).expect("CBOR");
    assert_eq!(back, expected_envelope(&doc));
}

#[test]
fn msgpack_decodes_back_to_the_same_value() {
    let doc = cayenne();
    let bytes = encode_doc(OutputFormat::MessagePack, &uplink(), &doc).expect("encodes");
    let back: Value = rmp_serde::from_slice(&bytes).expect("MessagePack");
    assert_eq!(back, expected_envelope(&doc));
}

#[test]
fn envelope_formats_keep_integers_and_an_empty_document() {
    let doc = Document::from_value(json!({"count": -3, "big": u64::MAX})).expect("valid");
    for format in [
        OutputFormat::Json,
        OutputFormat::Cbor,
        OutputFormat::MessagePack,
    ] {
        let bytes = encode_doc(format, &uplink(), &doc).expect("encodes");
        let back: Value = match format {
            OutputFormat::Json => serde_json::from_slice(&bytes).expect("JSON"),
            OutputFormat::Cbor => ciborium::from_reader(bytes.as_slice()).expect("CBOR"),
            _ => rmp_serde::from_slice(&bytes).expect("MessagePack"),
        };
        assert_eq!(
            back["data"],
            json!({"count": -3, "big": u64::MAX}),
            "{format}"
        );

        let empty = encode_doc(format, &uplink(), &Document::new()).expect("encodes");
        assert!(!empty.is_empty(), "{format}");
    }
    let bytes = encode_doc(OutputFormat::Json, &uplink(), &Document::new()).expect("encodes");
    let back: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(back["data"], json!({}));
}

#[test]
fn senml_has_one_record_per_leaf_with_base_name_and_time() {
    let bytes = encode_doc(OutputFormat::Senml, &uplink(), &cayenne()).expect("encodes");
    let expected = concat!(
        r#"[{"bn":"urn:dev:eui-0004a30b001c0530:","bt":1700000000.123,"n":"gps_1_altitude","v":10.0},"#,
        r#"{"n":"gps_1_latitude","v":42.3519},"#,
        r#"{"n":"gps_1_longitude","v":-87.9094},"#,
        r#"{"n":"humidity_5","v":50.0},"#,
        r#"{"n":"name","vs":"a b,c"},"#,
        r#"{"n":"ok","vb":true},"#,
        r#"{"n":"temperature_3","v":27.2}]"#,
    );
    assert_eq!(String::from_utf8(bytes).expect("UTF-8"), expected);
}

#[test]
fn senml_flattens_arrays_and_skips_nulls() {
    let doc = Document::from_value(json!({
        "accelerometer_6": {"x": 0.5, "y": -1},
        "samples": [1, null, 3],
        "missing": null
    }))
    .expect("valid");
    let bytes = encode_doc(OutputFormat::Senml, &uplink(), &doc).expect("encodes");
    let back: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(
        back,
        json!([
            {"bn": "urn:dev:eui-0004a30b001c0530:", "bt": 1_700_000_000.123, "n": "accelerometer_6_x", "v": 0.5},
            {"n": "accelerometer_6_y", "v": -1},
            {"n": "samples_0", "v": 1},
            {"n": "samples_2", "v": 3}
        ])
    );
}

#[test]
fn senml_of_a_document_without_leaves_is_an_empty_pack() {
    let doc = Document::from_value(json!({"nothing": null, "empty": {}})).expect("valid");
    for doc in [Document::new(), doc] {
        let bytes = encode_doc(OutputFormat::Senml, &uplink(), &doc).expect("encodes");
        assert_eq!(bytes, b"[]");
    }
}

#[test]
fn senml_rejects_names_rfc_8428_forbids() {
    let doc = Document::from_value(json!({"air temp": 21})).expect("valid");
    assert_eq!(
        encode_doc(OutputFormat::Senml, &uplink(), &doc),
        Err(FormatError::InvalidSenmlName {
            name: "urn:dev:eui-0004a30b001c0530:air temp".into()
        })
    );
}

#[test]
fn influx_line_escapes_tags_and_keeps_float_fields() {
    let bytes =
        encode_doc(OutputFormat::InfluxLineProtocol, &uplink(), &cayenne()).expect("encodes");
    let expected = concat!(
        r"field-sensors,device=eui-0004a30b001c0530,tenant=acme,gateway=gw\ 1\,north,rssi=-97 ",
        r#"gps_1_altitude=10.0,gps_1_latitude=42.3519,gps_1_longitude=-87.9094,humidity_5=50.0,"#,
        r#"name="a b,c",ok=true,temperature_3=27.2 1700000000123000000"#,
        "\n",
    );
    assert_eq!(String::from_utf8(bytes).expect("UTF-8"), expected);
}

#[test]
fn influx_line_escapes_quotes_keys_and_suffixes_integers() {
    let mut uplink = uplink();
    uplink.metadata = vec![
        ("site=a".into(), "x".into()),
        ("tenant".into(), "spoofed".into()),
        ("empty".into(), String::new()),
    ];
    let doc = Document::from_value(json!({
        "note": r#"say "hi" \o/"#,
        "count": 3,
        "delta": -12,
        "big": u64::MAX,
        "off": false,
        "odd key,=x": 1.5
    }))
    .expect("valid");
    let bytes = encode(
        OutputFormat::InfluxLineProtocol,
        &Envelope {
            uplink: &uplink,
            document: &doc,
            tenant: "acme corp",
            binding: "my binding,1",
        },
    )
    .expect("encodes");
    let expected = concat!(
        r"my\ binding\,1,device=eui-0004a30b001c0530,tenant=acme\ corp,site\=a=x ",
        r#"big=18446744073709551615u,count=3i,delta=-12i,note="say \"hi\" \\o/",odd\ key\,\=x=1.5,off=false"#,
        " 1700000000123000000\n",
    );
    assert_eq!(String::from_utf8(bytes).expect("UTF-8"), expected);
}

#[test]
fn influx_line_needs_at_least_one_field() {
    let doc = Document::from_value(json!({"nothing": null, "list": []})).expect("valid");
    for doc in [Document::new(), doc] {
        assert_eq!(
            encode_doc(OutputFormat::InfluxLineProtocol, &uplink(), &doc),
            Err(FormatError::NoFields {
                device_id: "eui-0004a30b001c0530".into()
            })
        );
    }
}

#[test]
fn influx_line_refuses_line_breaks() {
    let doc = Document::from_value(json!({"note": "two\nlines"})).expect("valid");
    assert!(matches!(
        encode_doc(OutputFormat::InfluxLineProtocol, &uplink(), &doc),
        Err(FormatError::LineBreak {
            element: "field value",
            ..
        })
    ));
}

#[test]
fn influx_line_refuses_times_beyond_nanosecond_range() {
    let mut uplink = uplink();
    uplink.received_at_ms = u64::MAX / 1_000;
    assert_eq!(
        encode_doc(OutputFormat::InfluxLineProtocol, &uplink, &cayenne()),
        Err(FormatError::TimestampOutOfRange {
            received_at_ms: u64::MAX / 1_000
        })
    );
}

#[test]
fn output_format_parses_its_configuration_names() {
    for format in OutputFormat::ALL {
        assert_eq!(format.name().parse::<OutputFormat>(), Ok(format));
        let from_serde: OutputFormat =
            serde_json::from_value(json!(format.name())).expect("serde name");
        assert_eq!(from_serde, format);
        assert_eq!(
            serde_json::to_value(format).expect("serializes"),
            json!(format.name())
        );
    }
}

#[test]
fn output_format_error_names_the_value_and_the_choices() {
    let err = "xml".parse::<OutputFormat>().expect_err("unknown");
    assert_eq!(
        err,
        UnknownFormat {
            value: "xml".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "unknown output format `xml`; expected one of: json, cbor, msgpack, senml, influx"
    );
    assert!("JSON".parse::<OutputFormat>().is_err());
    assert!("message-pack".parse::<OutputFormat>().is_err());
}

#[test]
fn content_types_name_each_media_type() {
    assert_eq!(content_type(OutputFormat::Json), "application/json");
    assert_eq!(content_type(OutputFormat::Cbor), "application/cbor");
    assert_eq!(
        content_type(OutputFormat::MessagePack),
        "application/msgpack"
    );
    assert_eq!(content_type(OutputFormat::Senml), "application/senml+json");
    assert_eq!(
        OutputFormat::InfluxLineProtocol.content_type(),
        "text/plain; charset=utf-8"
    );
}
