//! Proves every vector in `vectors.yaml` against the native codec.

#[path = "../../testkit/vectors.rs"]
mod vectors;

use sluice_sdk::Codec;
use tlv::Tlv;

#[test]
fn vectors_yaml_holds_for_the_native_codec() {
    vectors::check_file(
        concat!(env!("CARGO_MANIFEST_DIR"), "/vectors.yaml"),
        &vectors::Entrypoints {
            decode: Some(Tlv::decode),
            // The SDK's default: this codec does not encode.
            encode: Some(Tlv::encode),
            route: None,
        },
    );
}
