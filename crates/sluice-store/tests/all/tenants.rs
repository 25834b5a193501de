use serde_json::json;
use sluice_store::StoreError;

use crate::support::FileStore;

#[test]
fn a_tenant_throttle_is_kept_across_reopen_and_can_be_removed() {
    let fs = FileStore::new();
    let created = fs.store.create_tenant("acme", "Acme").expect("tenant");
    assert_eq!(created.throttle, None);

    let budget = json!({"messages_per_second": 50.0, "fuel_per_second": 1_000_000});
    let tenant = fs
        .store
        .set_tenant_throttle("acme", Some(&budget))
        .expect("set");
    assert_eq!(tenant.throttle.as_ref(), Some(&budget));

    let reopened = sluice_store::Store::open(&fs.path).expect("reopen");
    let listed = reopened.list_tenants().expect("list");
    assert_eq!(listed[0].throttle.as_ref(), Some(&budget));

    let cleared = reopened.set_tenant_throttle("acme", None).expect("clear");
    assert_eq!(cleared.throttle, None);
    assert_eq!(
        reopened
            .get_tenant("acme")
            .expect("get")
            .expect("exists")
            .throttle,
        None
    );
}

#[test]
fn setting_the_throttle_of_a_missing_tenant_names_it() {
    let fs = FileStore::new();
    let err = fs
        .store
        .set_tenant_throttle("ghost", Some(&json!({})))
        .expect_err("no such tenant");
    assert!(
        matches!(&err, StoreError::UnknownTenant { tenant } if tenant == "ghost"),
        "{err:?}"
    );
}
