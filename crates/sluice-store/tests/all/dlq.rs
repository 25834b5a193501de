use sluice_store::{NewDeadLetter, StoreError};
use sluice_types::{CodecError, CodecErrorKind, GuestFailure, ModuleRef, TrapKind, Uplink};

use crate::support::{FileStore, store_with_tenants};

fn dead_letter(tenant: &str, binding: &str, device: &str) -> NewDeadLetter {
    let module = ModuleRef::new("decoder", "3");
    NewDeadLetter {
        tenant_id: tenant.into(),
        binding: binding.into(),
        uplink: Uplink {
            device_id: device.into(),
            port: 2,
            received_at_ms: 1_700_000_000_000,
            payload: vec![0x01, 0xff, 0x00],
            metadata: vec![("rssi".into(), "-90".into()), ("gw".into(), "g1".into())],
        },
        failure: GuestFailure::GuestError {
            module: module.clone(),
            error: CodecError {
                kind: CodecErrorKind::InvalidInput,
                message: "truncated frame".into(),
            },
        },
        module,
        attempts: 3,
    }
}

#[test]
fn a_dead_letter_keeps_the_message_and_its_typed_failure() {
    let store = store_with_tenants();
    let mut entry = dead_letter("acme", "uplinks", "dev-1");
    entry.failure = GuestFailure::Trap {
        module: entry.module.clone(),
        kind: TrapKind::Unreachable,
        message: "panicked at decode".into(),
        backtrace: Some("0: decode\n1: main".into()),
    };
    let id = store.dlq_put(&entry).expect("put");
    let got = store.dlq_get("acme", id).expect("get").expect("exists");
    assert_eq!(got.id, id);
    assert_eq!(got.tenant_id, "acme");
    assert_eq!(got.binding, "uplinks");
    assert_eq!(got.uplink, entry.uplink);
    assert_eq!(got.failure, entry.failure);
    assert_eq!(got.failure_kind, "trap");
    assert_eq!(got.module, entry.module);
    assert_eq!(got.attempts, 3);
    assert!(got.created_at_ms > 0);
}

#[test]
fn the_failure_kind_has_its_own_column() {
    let fs = FileStore::new();
    fs.store.create_tenant("acme", "Acme").expect("tenant");
    fs.store
        .dlq_put(&dead_letter("acme", "uplinks", "dev-1"))
        .expect("put");
    let kind: String = fs
        .raw()
        .query_row("SELECT failure_kind FROM dead_letters", [], |row| {
            row.get(0)
        })
        .expect("kind");
    assert_eq!(kind, "guest-error");
}

#[test]
fn listing_pages_in_id_order_and_filters_by_binding() {
    let store = store_with_tenants();
    let mut ids = Vec::new();
    for i in 0..5 {
        let binding = if i % 2 == 0 { "uplinks" } else { "alarms" };
        ids.push(
            store
                .dlq_put(&dead_letter("acme", binding, &format!("dev-{i}")))
                .expect("put"),
        );
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    let first = store.dlq_list("acme", None, 2, None).expect("page 1");
    assert_eq!(first.iter().map(|e| e.id).collect::<Vec<_>>(), ids[..2]);
    let second = store
        .dlq_list("acme", None, 2, first.last().map(|e| e.id))
        .expect("page 2");
    assert_eq!(second.iter().map(|e| e.id).collect::<Vec<_>>(), ids[2..4]);
    let third = store
        .dlq_list("acme", None, 2, second.last().map(|e| e.id))
        .expect("page 3");
    assert_eq!(third.iter().map(|e| e.id).collect::<Vec<_>>(), ids[4..]);
    let end = store
        .dlq_list("acme", None, 2, third.last().map(|e| e.id))
        .expect("end");
    assert!(end.is_empty());

    let uplinks = store
        .dlq_list("acme", Some("uplinks"), 10, None)
        .expect("uplinks");
    assert_eq!(
        uplinks
            .iter()
            .map(|e| e.uplink.device_id.as_str())
            .collect::<Vec<_>>(),
        vec!["dev-0", "dev-2", "dev-4"]
    );
    let after = store
        .dlq_list("acme", Some("uplinks"), 10, Some(ids[2]))
        .expect("after");
    assert_eq!(after.iter().map(|e| e.id).collect::<Vec<_>>(), vec![ids[4]]);
}

#[test]
fn depth_purge_and_delete_count_per_binding() {
    let store = store_with_tenants();
    for binding in ["uplinks", "uplinks", "alarms"] {
        store
            .dlq_put(&dead_letter("acme", binding, "dev"))
            .expect("put");
    }
    assert_eq!(store.dlq_depth("acme", Some("uplinks")).expect("depth"), 2);
    assert_eq!(store.dlq_depth("acme", Some("alarms")).expect("depth"), 1);
    assert_eq!(store.dlq_depth("acme", None).expect("depth"), 3);

    assert_eq!(store.dlq_purge("acme", Some("uplinks")).expect("purge"), 2);
    assert_eq!(store.dlq_depth("acme", Some("uplinks")).expect("depth"), 0);
    assert_eq!(store.dlq_depth("acme", None).expect("depth"), 1);

    let remaining = store.dlq_list("acme", None, 10, None).expect("list");
    let id = remaining[0].id;
    store.dlq_delete("acme", id).expect("delete");
    assert_eq!(store.dlq_depth("acme", None).expect("depth"), 0);
    let err = store.dlq_delete("acme", id).expect_err("already deleted");
    assert_eq!(
        err.to_string(),
        format!("dead-letter entry {id} does not exist for tenant `acme`")
    );

    // Ids are never reused, so `after_id` paging stays valid across purges.
    let next = store
        .dlq_put(&dead_letter("acme", "uplinks", "dev"))
        .expect("put");
    assert!(next > id);
}

#[test]
fn dead_letters_survive_reopening_the_file() {
    let fs = FileStore::new();
    fs.store.create_tenant("acme", "Acme").expect("tenant");
    let entry = dead_letter("acme", "uplinks", "dev-1");
    let id = fs.store.dlq_put(&entry).expect("put");
    let fs = fs.reopen();
    let got = fs
        .store
        .dlq_get("acme", id)
        .expect("get")
        .expect("survived");
    assert_eq!(got.uplink, entry.uplink);
    assert_eq!(got.failure, entry.failure);
    assert_eq!(
        fs.store.dlq_depth("acme", Some("uplinks")).expect("depth"),
        1
    );
}

#[test]
fn a_dead_letter_for_an_unknown_tenant_is_refused() {
    let store = store_with_tenants();
    let err = store
        .dlq_put(&dead_letter("ghost", "uplinks", "dev"))
        .expect_err("unknown tenant");
    assert!(matches!(err, StoreError::UnknownTenant { .. }), "{err:?}");
}

#[test]
fn a_page_is_capped() {
    let store = store_with_tenants();
    store
        .dlq_put(&dead_letter("acme", "uplinks", "dev"))
        .expect("put");
    // A huge limit is not an error, just capped at MAX_DLQ_PAGE.
    assert_eq!(
        store
            .dlq_list("acme", None, u32::MAX, None)
            .expect("list")
            .len(),
        1
    );
    assert!(
        store
            .dlq_list("acme", None, 0, None)
            .expect("list")
            .is_empty()
    );
}
