//! Proves every vector in `vectors.yaml` against the native router.

#[path = "../../testkit/vectors.rs"]
mod vectors;

use std::collections::BTreeMap;

use sluice_sdk::{CodecError, Decision, Uplink, Value};
use threshold_router::{Thresholds, route};

/// What the module does, with the vector's config in place of the host's.
fn route_with_config(
    message: &Uplink,
    decoded: &Value,
    config: &BTreeMap<String, String>,
) -> Result<Vec<Decision>, CodecError> {
    let thresholds = Thresholds::from_config(|key| config.get(key).cloned())?;
    route(message, decoded, &thresholds)
}

#[test]
fn vectors_yaml_holds_for_the_native_router() {
    vectors::check_file(
        concat!(env!("CARGO_MANIFEST_DIR"), "/vectors.yaml"),
        &vectors::Entrypoints {
            decode: None,
            encode: None,
            route: Some(route_with_config),
        },
    );
}
