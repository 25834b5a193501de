//! JavaScript codecs built by `sluice-js`, run on the production runtime exactly as any other
//! module: validated, loaded under a policy, called per message. One binary, so linking
//! happens once.

mod build;
mod codecs;
mod hostile;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use sluice_runtime::{Instance, InstanceEnv, Module, Runtime, RuntimeConfig};
use sluice_types::{Document, ModulePolicy, ModuleRef, Uplink};

/// One runtime shared by every test, as in production.
pub(crate) fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(RuntimeConfig::default()).expect("runtime starts"))
}

/// The text of a fixture under `js/fixtures/`.
pub(crate) fn fixture(name: &str) -> String {
    let path = format!("{}/../../js/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The component of a fixture, built once per test binary.
pub(crate) fn component(name: &str) -> Vec<u8> {
    static BUILT: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    let built = BUILT.get_or_init(Mutex::default);
    if let Some(bytes) = built.lock().expect("not poisoned").get(name) {
        return bytes.clone();
    }
    let bytes =
        sluice_js::build_js_codec(&fixture(name)).unwrap_or_else(|e| panic!("{name} builds: {e}"));
    built
        .lock()
        .expect("not poisoned")
        .insert(name.to_string(), bytes.clone());
    bytes
}

pub(crate) fn load_with(name: &str, policy: ModulePolicy) -> Module {
    let id = name.trim_end_matches(".js");
    runtime()
        .load(ModuleRef::new(id, "1"), &component(name), policy)
        .unwrap_or_else(|e| panic!("{name} loads: {e}"))
}

pub(crate) fn instance(name: &str) -> Instance {
    load_with(name, ModulePolicy::default()).instantiate(InstanceEnv::default())
}

pub(crate) fn uplink(port: u16, payload: &[u8]) -> Uplink {
    Uplink {
        device_id: "dev-1".into(),
        port,
        received_at_ms: 1_700_000_000_000,
        payload: payload.to_vec(),
        metadata: vec![],
    }
}

pub(crate) fn hex(text: &str) -> Vec<u8> {
    let compact: String = text.split_whitespace().collect();
    (0..compact.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&compact[i..i + 2], 16).expect("test hex"))
        .collect()
}

pub(crate) fn json(document: &Document) -> serde_json::Value {
    serde_json::from_slice(&document.to_json_vec()).expect("a document is JSON")
}

/// The host is unharmed: a fresh JavaScript codec still decodes a frame correctly.
pub(crate) fn assert_host_unharmed() {
    let mut lpp = instance("cayenne-lpp.js");
    let out = lpp.decode(&uplink(1, &hex("03 67 01 10")));
    let document = out
        .result
        .expect("a good codec decodes after a hostile call");
    assert_eq!(json(&document), serde_json::json!({"temperature_3": 27.2}));
}
