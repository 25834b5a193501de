//! Integration tests of the sandbox, on real guest components built from `test-programs/`
//! and `examples/`. One binary, so linking happens once.

mod contract;
mod hostile;
mod validation;

use std::sync::OnceLock;

use sluice_runtime::{Instance, InstanceEnv, Module, Runtime, RuntimeConfig};
use sluice_types::{Document, ModulePolicy, ModuleRef, Uplink};

/// One runtime shared by every test, as in production: compiled artifacts are cached.
pub(crate) fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(RuntimeConfig::default()).expect("runtime starts"))
}

pub(crate) fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

pub(crate) fn module_ref(name: &str) -> ModuleRef {
    ModuleRef::new(name, "1")
}

pub(crate) fn load_with(path: &str, policy: ModulePolicy) -> Module {
    let name = std::path::Path::new(path)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("module")
        .to_string();
    runtime()
        .load(module_ref(&name), &read(path), policy)
        .unwrap_or_else(|e| panic!("{path} loads: {e}"))
}

pub(crate) fn load(path: &str) -> Module {
    load_with(path, ModulePolicy::default())
}

pub(crate) fn instance(path: &str) -> Instance {
    load(path).instantiate(InstanceEnv::default())
}

pub(crate) fn uplink(payload: &[u8]) -> Uplink {
    Uplink {
        device_id: "dev-1".into(),
        port: 1,
        received_at_ms: 1_700_000_000_000,
        payload: payload.to_vec(),
        metadata: vec![("site".into(), "plant-1".into())],
    }
}

pub(crate) fn doc(value: serde_json::Value) -> Document {
    Document::from_value(value).expect("valid document")
}

/// The host is unharmed: a good module still decodes a good message correctly.
pub(crate) fn assert_host_unharmed() {
    let mut echo = instance(sluice_test_programs::TP_ECHO);
    let out = echo.decode(&uplink(&[1, 2, 3]));
    let document = out.result.expect("echo decodes after a hostile call");
    assert_eq!(document.as_map()["len"], 3);
    assert_eq!(document.as_map()["hex"], "010203");
}
