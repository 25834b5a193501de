//! A tenant sees only its own objects: another tenant's are simply not found.

use sluice_store::{NewDeadLetter, StoreError};
use sluice_types::{GuestFailure, ModuleRef, Uplink, World};

use crate::support::{binding_spec, module_with_version, store_with_tenants};

#[test]
fn a_tenant_cannot_read_activate_or_delete_another_tenants_module() {
    let store = store_with_tenants();
    module_with_version(
        &store,
        "globex",
        "secret-codec",
        World::Codec,
        b"globex code",
    );
    store
        .activate("globex", "secret-codec", 1)
        .expect("activate");

    assert_eq!(store.get_module("acme", "secret-codec").expect("get"), None);
    assert!(store.list_modules("acme").expect("list").is_empty());
    assert_eq!(
        store.get_version("acme", "secret-codec", 1).expect("get"),
        None
    );
    assert_eq!(
        store
            .get_active_version("acme", "secret-codec")
            .expect("get"),
        None
    );
    for err in [
        store.list_versions("acme", "secret-codec").map(|_| ()),
        store.activate("acme", "secret-codec", 1).map(|_| ()),
        store.rollback("acme", "secret-codec").map(|_| ()),
        store.delete_module("acme", "secret-codec"),
        store.list_activations("acme", "secret-codec").map(|_| ()),
    ] {
        let err = err.expect_err("another tenant's module");
        assert!(
            matches!(&err, StoreError::ModuleNotFound { tenant, .. } if tenant == "acme"),
            "{err:?}"
        );
    }
    let err = store
        .add_version(
            "acme",
            "secret-codec",
            crate::support::new_version(b"evil", &Default::default()),
        )
        .expect_err("upload into another tenant's module");
    assert!(matches!(err, StoreError::ModuleNotFound { .. }), "{err:?}");

    // Nothing changed for the owner.
    let module = store
        .get_module("globex", "secret-codec")
        .expect("get")
        .expect("still there");
    assert_eq!(module.active_version, Some(1));
    assert_eq!(
        store
            .list_versions("globex", "secret-codec")
            .expect("list")
            .len(),
        1
    );
}

#[test]
fn a_tenant_cannot_read_change_or_delete_another_tenants_binding() {
    let store = store_with_tenants();
    module_with_version(&store, "globex", "decoder", World::Codec, b"globex code");
    module_with_version(&store, "acme", "decoder", World::Codec, b"acme code");
    store
        .create_binding("globex", &binding_spec("uplinks", "decoder", None))
        .expect("binding");

    assert_eq!(store.get_binding("acme", "uplinks").expect("get"), None);
    assert!(store.list_bindings("acme").expect("list").is_empty());
    let err = store.delete_binding("acme", "uplinks").expect_err("delete");
    assert!(matches!(err, StoreError::BindingNotFound { .. }), "{err:?}");
    let err = store
        .update_binding("acme", &binding_spec("uplinks", "decoder", None))
        .expect_err("update");
    assert!(matches!(err, StoreError::BindingNotFound { .. }), "{err:?}");
    assert!(
        store
            .get_binding("globex", "uplinks")
            .expect("get")
            .is_some()
    );
}

#[test]
fn a_binding_cannot_use_another_tenants_module() {
    let store = store_with_tenants();
    module_with_version(&store, "globex", "decoder", World::Codec, b"globex code");
    let err = store
        .create_binding("acme", &binding_spec("uplinks", "decoder", None))
        .expect_err("other tenant's codec");
    assert_eq!(
        err.to_string(),
        "module `decoder` does not exist for tenant `acme`"
    );
}

#[test]
fn a_tenant_cannot_see_or_delete_another_tenants_dead_letters() {
    let store = store_with_tenants();
    let module = ModuleRef::new("decoder", "1");
    let id = store
        .dlq_put(&NewDeadLetter {
            tenant_id: "globex".into(),
            binding: "uplinks".into(),
            uplink: Uplink::new("dev-1", 1, vec![1, 2, 3]),
            failure: GuestFailure::InvalidOutput {
                module: module.clone(),
                reason: "not a map".into(),
            },
            module,
            attempts: 1,
        })
        .expect("put");
    assert_eq!(store.dlq_get("acme", id).expect("get"), None);
    assert!(
        store
            .dlq_list("acme", None, 10, None)
            .expect("list")
            .is_empty()
    );
    assert_eq!(store.dlq_depth("acme", None).expect("depth"), 0);
    assert_eq!(store.dlq_purge("acme", None).expect("purge"), 0);
    assert!(matches!(
        store.dlq_delete("acme", id),
        Err(StoreError::DeadLetterNotFound { .. })
    ));
    assert_eq!(store.dlq_depth("globex", None).expect("depth"), 1);
}
