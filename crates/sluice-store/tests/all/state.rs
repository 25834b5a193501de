use sluice_runtime::{MemoryStateStore, StateStore};

use crate::support::{FileStore, store_with_tenants};

#[test]
fn the_per_device_quota_counts_keys_and_values() {
    let store = store_with_tenants();
    let state = store.state_store("acme", "uplinks").expect("state");
    // "count" (5) + 5 bytes = 10 of 16.
    assert!(state.set("dev", "count", b"12345", 16).expect("set"));
    assert_eq!(state.device_bytes("dev").expect("bytes"), 10);
    // "x" (1) + 6 = 7 more would make 17.
    assert!(!state.set("dev", "x", b"123456", 16).expect("over quota"));
    assert_eq!(state.get("dev", "x").expect("get"), None);
    // Replacing a value counts the new value, not both.
    assert!(
        state
            .set("dev", "count", b"1234567890a", 16)
            .expect("replace")
    );
    assert!(
        !state
            .set("dev", "count", b"1234567890ab", 16)
            .expect("too big")
    );
    assert_eq!(
        state.get("dev", "count").expect("get"),
        Some(b"1234567890a".to_vec())
    );
    // Deleting frees room.
    state.delete("dev", "count").expect("delete");
    assert_eq!(state.device_bytes("dev").expect("bytes"), 0);
    assert!(state.set("dev", "x", b"123456", 16).expect("fits now"));
}

#[test]
fn state_is_kept_per_device_binding_and_tenant() {
    let store = store_with_tenants();
    let acme_uplinks = store.state_store("acme", "uplinks").expect("state");
    let acme_alarms = store.state_store("acme", "alarms").expect("state");
    let globex_uplinks = store.state_store("globex", "uplinks").expect("state");
    assert!(acme_uplinks.set("dev-1", "k", b"acme-1", 10).expect("set"));
    // Each device has its own quota: dev-1 being full does not affect dev-2.
    assert!(acme_uplinks.set("dev-2", "k", b"acme-2", 10).expect("set"));
    assert!(acme_alarms.set("dev-1", "k", b"alarm", 10).expect("set"));
    assert!(
        globex_uplinks
            .set("dev-1", "k", b"globex", 10)
            .expect("set")
    );

    assert_eq!(
        acme_uplinks.get("dev-1", "k").expect("get"),
        Some(b"acme-1".to_vec())
    );
    assert_eq!(
        acme_uplinks.get("dev-2", "k").expect("get"),
        Some(b"acme-2".to_vec())
    );
    assert_eq!(
        acme_alarms.get("dev-1", "k").expect("get"),
        Some(b"alarm".to_vec())
    );
    assert_eq!(
        globex_uplinks.get("dev-1", "k").expect("get"),
        Some(b"globex".to_vec())
    );
    assert_eq!(globex_uplinks.get("dev-2", "k").expect("get"), None);

    acme_uplinks.delete("dev-1", "k").expect("delete");
    assert_eq!(
        acme_alarms.get("dev-1", "k").expect("get"),
        Some(b"alarm".to_vec())
    );
    assert_eq!(store.state_purge("acme", Some("alarms")).expect("purge"), 1);
    assert_eq!(acme_alarms.get("dev-1", "k").expect("get"), None);
    assert_eq!(
        globex_uplinks.get("dev-1", "k").expect("get"),
        Some(b"globex".to_vec())
    );
}

#[test]
fn the_sqlite_store_answers_like_the_memory_store() {
    let store = store_with_tenants();
    let sqlite = store.state_store("acme", "uplinks").expect("state");
    let memory = MemoryStateStore::new();
    // Multi-byte keys count in bytes, as the runtime counts them.
    let script: &[(&str, &str, &[u8])] = &[
        ("a", "température", b"21.5"),
        ("a", "n", b"1"),
        ("a", "température", b"21.75"),
        ("a", "big", &[0u8; 20]),
        ("a", "n", b""),
        ("b", "n", &[7u8; 30]),
    ];
    for &(device, key, value) in script {
        assert_eq!(
            sqlite.set(device, key, value, 32).expect("sqlite"),
            memory.set(device, key, value, 32).expect("memory"),
            "set {device}/{key}"
        );
        assert_eq!(
            sqlite.device_bytes(device).expect("bytes"),
            memory.device_bytes(device),
            "bytes of {device}"
        );
        assert_eq!(
            sqlite.get(device, key).expect("sqlite"),
            memory.get(device, key).expect("memory")
        );
    }
}

#[test]
fn state_survives_reopening_the_file() {
    let fs = FileStore::new();
    fs.store.create_tenant("acme", "Acme").expect("tenant");
    let state = fs.store.state_store("acme", "uplinks").expect("state");
    assert!(state.set("dev", "last", b"\x00\x01", 64).expect("set"));
    drop(state);
    let fs = fs.reopen();
    let state = fs.store.state_store("acme", "uplinks").expect("state");
    assert_eq!(state.get("dev", "last").expect("get"), Some(vec![0, 1]));
}

#[test]
fn a_state_store_needs_a_known_tenant() {
    let store = store_with_tenants();
    let err = store
        .state_store("ghost", "uplinks")
        .expect_err("unknown tenant");
    assert_eq!(err.to_string(), "tenant `ghost` does not exist");
}

#[test]
fn sqlite_failures_become_state_store_errors_with_the_message() {
    let fs = FileStore::new();
    fs.store.create_tenant("acme", "Acme").expect("tenant");
    let state = fs.store.state_store("acme", "uplinks").expect("state");
    fs.raw()
        .execute_batch("DROP TABLE device_state")
        .expect("drop table");
    let err = state.get("dev", "k").expect_err("no table");
    assert!(err.0.contains("no such table: device_state"), "{err}");
    assert!(err.0.contains("reading device state"), "{err}");
    let err = state.set("dev", "k", b"v", 64).expect_err("no table");
    assert!(err.0.contains("no such table"), "{err}");
}
