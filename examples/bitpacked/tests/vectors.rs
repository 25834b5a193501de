//! Proves every vector in `vectors.yaml` against the native codec.

#[path = "../../testkit/vectors.rs"]
mod vectors;

use bitpacked::Bitpacked;
use sluice_sdk::Codec;

#[test]
fn vectors_yaml_holds_for_the_native_codec() {
    vectors::check_file(
        concat!(env!("CARGO_MANIFEST_DIR"), "/vectors.yaml"),
        &vectors::Entrypoints {
            decode: Some(Bitpacked::decode),
            encode: Some(Bitpacked::encode),
            route: None,
        },
    );
}
