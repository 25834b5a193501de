use std::collections::BTreeMap;

use sluice_store::StoreError;
use sluice_types::World;

use crate::support::{FileStore, binding_spec, module_with_version, store_with_tenants};

#[test]
fn bindings_can_be_created_read_listed_updated_and_deleted() {
    let store = store_with_tenants();
    module_with_version(&store, "acme", "decoder", World::Codec, b"codec");
    module_with_version(&store, "acme", "decoder-v2", World::Codec, b"codec 2");
    module_with_version(&store, "acme", "router", World::Router, b"router");

    let created = store
        .create_binding("acme", &binding_spec("uplinks", "decoder", Some("router")))
        .expect("create");
    assert_eq!(created.tenant_id, "acme");
    assert_eq!(created.codec, "decoder");
    assert_eq!(created.router.as_deref(), Some("router"));
    assert_eq!(created.config.get("region").map(String::as_str), Some("eu"));
    assert_eq!(
        created.sinks,
        serde_json::json!([{ "type": "mqtt", "topic": "out/{device}" }])
    );
    assert_eq!(
        created.sources,
        serde_json::json!([{ "type": "mqtt", "topic": "in/+/up" }])
    );
    assert_eq!(
        store.get_binding("acme", "uplinks").expect("get"),
        Some(created.clone())
    );

    let mut spec = binding_spec("uplinks", "decoder-v2", None);
    spec.config = BTreeMap::from([("region".into(), "us".into()), ("debug".into(), "1".into())]);
    let updated = store.update_binding("acme", &spec).expect("update");
    assert_eq!(updated.codec, "decoder-v2");
    assert_eq!(updated.router, None);
    assert_eq!(updated.config, spec.config);
    assert_eq!(updated.created_at_ms, created.created_at_ms);
    assert!(updated.updated_at_ms >= created.updated_at_ms);

    store
        .create_binding("acme", &binding_spec("alarms", "decoder", None))
        .expect("second");
    let names: Vec<String> = store
        .list_bindings("acme")
        .expect("list")
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, vec!["alarms", "uplinks"]);

    store.delete_binding("acme", "uplinks").expect("delete");
    assert_eq!(store.get_binding("acme", "uplinks").expect("get"), None);
    let again = store.delete_binding("acme", "uplinks").expect_err("gone");
    assert_eq!(
        again.to_string(),
        "binding `uplinks` does not exist for tenant `acme`"
    );
    let missing = store
        .update_binding("acme", &binding_spec("nope", "decoder", None))
        .expect_err("update of a missing binding");
    assert!(
        matches!(missing, StoreError::BindingNotFound { .. }),
        "{missing:?}"
    );
}

#[test]
fn a_binding_needs_modules_of_the_right_world() {
    let store = store_with_tenants();
    module_with_version(&store, "acme", "decoder", World::Codec, b"codec");
    module_with_version(&store, "acme", "router", World::Router, b"router");
    let err = store
        .create_binding("acme", &binding_spec("b", "router", None))
        .expect_err("router as codec");
    assert_eq!(
        err.to_string(),
        "module `router` is a router, but a codec is required here"
    );
    let err = store
        .create_binding("acme", &binding_spec("b", "decoder", Some("decoder")))
        .expect_err("codec as router");
    assert!(
        matches!(
            err,
            StoreError::WrongWorld {
                expected: "router",
                ..
            }
        ),
        "{err:?}"
    );
    let err = store
        .create_binding("acme", &binding_spec("b", "missing", None))
        .expect_err("missing codec");
    assert_eq!(
        err.to_string(),
        "module `missing` does not exist for tenant `acme`"
    );
    let err = store
        .create_binding("ghost", &binding_spec("b", "decoder", None))
        .expect_err("unknown tenant");
    assert_eq!(err.to_string(), "tenant `ghost` does not exist");
}

#[test]
fn pause_survives_a_reopen_and_policy_is_kept_as_given() {
    let fs = FileStore::new();
    fs.store.create_tenant("acme", "Acme").expect("tenant");
    module_with_version(
        &fs.store,
        "acme",
        "decoder",
        World::Codec,
        b"not checked here",
    );
    let mut spec = binding_spec("uplinks", "decoder", None);
    spec.policy = serde_json::json!({ "throttle": { "messages_per_second": 10 } });
    let created = fs.store.create_binding("acme", &spec).expect("create");
    assert!(!created.paused);
    assert_eq!(created.policy, spec.policy);
    let paused = fs
        .store
        .set_binding_paused("acme", "uplinks", true)
        .expect("pause");
    assert!(paused.paused);
    assert_eq!(
        paused.updated_at_ms, created.updated_at_ms,
        "a pause is not an edit"
    );
    assert!(matches!(
        fs.store.set_binding_paused("globex", "uplinks", true),
        Err(StoreError::BindingNotFound { .. })
    ));
    let fs = fs.reopen();
    let again = fs
        .store
        .get_binding("acme", "uplinks")
        .expect("get")
        .expect("binding");
    assert!(again.paused);
    let resumed = fs
        .store
        .set_binding_paused("acme", "uplinks", false)
        .expect("resume");
    assert!(!resumed.paused);
}
