//! Helpers shared by the store tests.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sluice_store::{BindingSpec, NewVersion, Store};
use sluice_types::{ModulePolicy, World};

/// A store in a fresh temporary directory; the directory lives as long as the value.
pub struct FileStore {
    pub store: Store,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl FileStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sluice.db");
        let store = Store::open(&path).expect("open store");
        Self {
            store,
            path,
            _dir: dir,
        }
    }

    /// A second, raw connection to the same file, for looking behind the API.
    pub fn raw(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.path).expect("raw connection")
    }

    /// Drops the store and opens the file again.
    pub fn reopen(self) -> Self {
        let Self { store, path, _dir } = self;
        drop(store);
        let store = Store::open(&path).expect("reopen store");
        Self { store, path, _dir }
    }
}

/// An in-memory store with tenants `acme` and `globex`.
pub fn store_with_tenants() -> Store {
    let store = Store::open_in_memory().expect("open");
    store.create_tenant("acme", "Acme Corp").expect("acme");
    store.create_tenant("globex", "Globex").expect("globex");
    store
}

/// Adds a module `name` of `world` to `tenant` with one version holding `bytes`.
pub fn module_with_version(store: &Store, tenant: &str, name: &str, world: World, bytes: &[u8]) {
    store.create_module(tenant, name, world).expect("module");
    store
        .add_version(tenant, name, new_version(bytes, &ModulePolicy::default()))
        .expect("version");
}

pub fn new_version<'a>(bytes: &'a [u8], policy: &'a ModulePolicy) -> NewVersion<'a> {
    NewVersion::new(bytes, policy)
}

pub fn binding_spec(name: &str, codec: &str, router: Option<&str>) -> BindingSpec {
    BindingSpec {
        name: name.into(),
        codec: codec.into(),
        router: router.map(str::to_string),
        config: BTreeMap::from([("region".to_string(), "eu".to_string())]),
        sources: serde_json::json!([{ "type": "mqtt", "topic": "in/+/up" }]),
        sinks: serde_json::json!([{ "type": "mqtt", "topic": "out/{device}" }]),
        policy: serde_json::json!({}),
    }
}
