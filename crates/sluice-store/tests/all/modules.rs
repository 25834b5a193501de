use sluice_store::{NewVersion, Source, SourceLanguage, StoreError};
use sluice_types::{ModulePolicy, World};

use crate::support::{
    FileStore, binding_spec, module_with_version, new_version, store_with_tenants,
};

#[test]
fn versions_are_numbered_per_module_and_hold_their_content() {
    let store = store_with_tenants();
    store
        .create_module("acme", "decoder", World::Codec)
        .expect("module");
    store
        .create_module("acme", "other", World::Codec)
        .expect("module");
    let policy = ModulePolicy::default();
    let v1 = store
        .add_version(
            "acme",
            "decoder",
            NewVersion {
                component: b"component one",
                policy: &policy,
                test_vectors_yaml: Some("- name: empty\n  payload: \"\"\n"),
                source: None,
            },
        )
        .expect("v1");
    let v2 = store
        .add_version("acme", "decoder", new_version(b"component two", &policy))
        .expect("v2");
    let other = store
        .add_version("acme", "other", new_version(b"x", &policy))
        .expect("other v1");
    assert_eq!((v1.version.version, v2.version.version), (1, 2));
    assert_eq!(other.version.version, 1);
    assert!(v1.created && v2.created);
    assert_eq!(v1.version.sha256, hex_sha256(b"component one"));

    let got = store
        .get_version("acme", "decoder", 1)
        .expect("get")
        .expect("exists");
    assert_eq!(got.component, b"component one");
    assert_eq!(got.info, v1.version);
    assert_eq!(
        got.info.test_vectors_yaml.as_deref(),
        Some("- name: empty\n  payload: \"\"\n")
    );
    let listed = store.list_versions("acme", "decoder").expect("list");
    assert_eq!(
        listed.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(listed[1].size_bytes, b"component two".len() as u64);
    assert_eq!(store.get_version("acme", "decoder", 3).expect("get"), None);
}

#[test]
fn a_version_built_from_source_keeps_its_source() {
    let store = store_with_tenants();
    store
        .create_module("acme", "js", World::Codec)
        .expect("module");
    let policy = ModulePolicy::default();
    let with_source = |text| NewVersion {
        component: b"same component",
        policy: &policy,
        test_vectors_yaml: None,
        source: Some(Source {
            language: SourceLanguage::JavaScript,
            text,
        }),
    };
    let v1 = store
        .add_version("acme", "js", with_source("function decodeUplink(i) {}"))
        .expect("v1");
    assert_eq!(v1.version.source_language, Some(SourceLanguage::JavaScript));
    let again = store
        .add_version("acme", "js", with_source("function decodeUplink(i) {}"))
        .expect("again");
    assert!(
        !again.created,
        "identical source and component: same version"
    );
    let v2 = store
        .add_version(
            "acme",
            "js",
            with_source("// edited\nfunction decodeUplink(i) {}"),
        )
        .expect("v2");
    assert_eq!((v2.version.version, v2.created), (2, true));
    let v3 = store
        .add_version("acme", "js", new_version(b"same component", &policy))
        .expect("bytes only");
    assert_eq!((v3.version.version, v3.version.source_language), (3, None));

    let got = store
        .get_version("acme", "js", 2)
        .expect("get")
        .expect("v2");
    assert_eq!(
        got.source.as_deref(),
        Some("// edited\nfunction decodeUplink(i) {}")
    );
    assert_eq!(got.info, v2.version);
    let bytes_only = store
        .get_version("acme", "js", 3)
        .expect("get")
        .expect("v3");
    assert_eq!(bytes_only.source, None);
    let listed = store.list_versions("acme", "js").expect("list");
    assert_eq!(
        listed.iter().map(|v| v.source_language).collect::<Vec<_>>(),
        vec![
            Some(SourceLanguage::JavaScript),
            Some(SourceLanguage::JavaScript),
            None
        ]
    );
}

#[test]
fn deploy_creates_adds_and_activates_and_refuses_another_world() {
    let store = store_with_tenants();
    let policy = ModulePolicy::default();
    let first = store
        .deploy("acme", "lpp", World::Codec, new_version(b"one", &policy))
        .expect("deploy creates the module");
    assert_eq!(first.version.version, 1);
    let second = store
        .deploy("acme", "lpp", World::Codec, new_version(b"two", &policy))
        .expect("deploy to an existing module");
    assert_eq!(second.version.version, 2);
    let module = store
        .get_module("acme", "lpp")
        .expect("get")
        .expect("module");
    assert_eq!(module.active_version, Some(2));
    let again = store
        .deploy("acme", "lpp", World::Codec, new_version(b"two", &policy))
        .expect("the same bytes again");
    assert!(!again.created);
    match store.deploy("acme", "lpp", World::Router, new_version(b"three", &policy)) {
        Err(StoreError::Invalid { field, problem }) => {
            assert_eq!(field, "module world");
            assert!(problem.contains("is a codec"), "{problem}");
        }
        other => panic!("expected a world mismatch, got {other:?}"),
    }
    assert_eq!(store.list_versions("acme", "lpp").expect("list").len(), 2);
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn stored_versions_cannot_be_changed_or_deleted_behind_the_api() {
    let fs = FileStore::new();
    fs.store.create_tenant("acme", "Acme").expect("tenant");
    module_with_version(&fs.store, "acme", "decoder", World::Codec, b"original");
    let raw = fs.raw();
    let update = raw
        .execute("UPDATE module_versions SET component = x'00'", [])
        .expect_err("update refused");
    assert!(
        update.to_string().contains("module versions are immutable"),
        "{update}"
    );
    let delete = raw
        .execute("DELETE FROM module_versions", [])
        .expect_err("delete refused");
    assert!(
        delete.to_string().contains("module versions are immutable"),
        "{delete}"
    );
    let got = fs
        .store
        .get_version("acme", "decoder", 1)
        .expect("get")
        .expect("exists");
    assert_eq!(got.component, b"original");
}

#[test]
fn uploading_identical_content_returns_the_existing_version() {
    let store = store_with_tenants();
    store
        .create_module("acme", "decoder", World::Codec)
        .expect("module");
    let policy = ModulePolicy::default();
    let first = store
        .add_version("acme", "decoder", new_version(b"same bytes", &policy))
        .expect("first");
    store
        .add_version("acme", "decoder", new_version(b"different", &policy))
        .expect("second");
    let again = store
        .add_version("acme", "decoder", new_version(b"same bytes", &policy))
        .expect("again");
    assert!(!again.created);
    assert_eq!(again.version, first.version);

    // Same bytes under another policy are a new version with the same hash.
    let mut stricter = ModulePolicy::default();
    stricter.limits.fuel_per_call = 1_000;
    let stricter_upload = store
        .add_version("acme", "decoder", new_version(b"same bytes", &stricter))
        .expect("stricter");
    assert!(stricter_upload.created);
    assert_eq!(stricter_upload.version.version, 3);
    assert_eq!(stricter_upload.version.sha256, first.version.sha256);
    assert_eq!(stricter_upload.version.policy, stricter);
    assert_eq!(hex_sha256(b"same bytes"), first.version.sha256);
}

#[test]
fn activation_and_rollback_walk_the_history() {
    let store = store_with_tenants();
    store
        .create_module("acme", "decoder", World::Codec)
        .expect("module");
    let policy = ModulePolicy::default();
    for bytes in [&b"v1"[..], b"v2", b"v3"] {
        store
            .add_version("acme", "decoder", new_version(bytes, &policy))
            .expect("version");
    }
    assert_eq!(
        store.get_active_version("acme", "decoder").expect("active"),
        None
    );
    for version in [1, 2, 3] {
        let module = store
            .activate("acme", "decoder", version)
            .expect("activate");
        assert_eq!(module.active_version, Some(version));
    }
    // Activating the active version changes nothing, and adds no history.
    store.activate("acme", "decoder", 3).expect("again");
    assert_eq!(
        store
            .list_activations("acme", "decoder")
            .expect("history")
            .len(),
        3
    );

    let active = store
        .get_active_version("acme", "decoder")
        .expect("active")
        .expect("some");
    assert_eq!((active.info.version, active.component), (3, b"v3".to_vec()));

    assert_eq!(
        store
            .rollback("acme", "decoder")
            .expect("rollback")
            .active_version,
        Some(2)
    );
    assert_eq!(
        store
            .rollback("acme", "decoder")
            .expect("rollback")
            .active_version,
        Some(1)
    );
    let err = store.rollback("acme", "decoder").expect_err("nothing left");
    assert!(
        matches!(err, StoreError::NoPreviousVersion { .. }),
        "{err:?}"
    );
    assert_eq!(
        store
            .get_module("acme", "decoder")
            .expect("get")
            .and_then(|m| m.active_version),
        Some(1)
    );

    // A new activation after rollbacks stacks on what is live.
    store.activate("acme", "decoder", 3).expect("activate 3");
    assert_eq!(
        store
            .rollback("acme", "decoder")
            .expect("rollback")
            .active_version,
        Some(1)
    );
    let history = store.list_activations("acme", "decoder").expect("history");
    assert_eq!(
        history
            .iter()
            .map(|a| (a.version, a.rolled_back_at_ms.is_some()))
            .collect::<Vec<_>>(),
        vec![(1, false), (2, true), (3, true), (3, true)]
    );
}

#[test]
fn rollback_with_no_previous_version_is_a_typed_error() {
    let store = store_with_tenants();
    module_with_version(&store, "acme", "decoder", World::Codec, b"v1");
    let never_activated = store.rollback("acme", "decoder").expect_err("never active");
    assert!(matches!(
        never_activated,
        StoreError::NoPreviousVersion { .. }
    ));
    store.activate("acme", "decoder", 1).expect("activate");
    let once = store
        .rollback("acme", "decoder")
        .expect_err("one activation");
    assert_eq!(
        once.to_string(),
        "module `decoder` of tenant `acme` has no previously active version to roll back to"
    );
}

#[test]
fn activating_a_missing_version_names_it() {
    let store = store_with_tenants();
    module_with_version(&store, "acme", "decoder", World::Codec, b"v1");
    let err = store
        .activate("acme", "decoder", 7)
        .expect_err("no version 7");
    assert_eq!(
        err.to_string(),
        "module `decoder` of tenant `acme` has no version 7"
    );
    let err = store.activate("acme", "nope", 1).expect_err("no module");
    assert_eq!(
        err.to_string(),
        "module `nope` does not exist for tenant `acme`"
    );
}

#[test]
fn creating_a_module_for_an_unknown_tenant_names_the_tenant() {
    let store = store_with_tenants();
    let err = store
        .create_module("ghost", "decoder", World::Codec)
        .expect_err("unknown tenant");
    assert!(matches!(&err, StoreError::UnknownTenant { tenant } if tenant == "ghost"));
    assert_eq!(err.to_string(), "tenant `ghost` does not exist");
}

#[test]
fn duplicate_names_are_conflicts() {
    let store = store_with_tenants();
    let tenant = store
        .create_tenant("acme", "Again")
        .expect_err("tenant twice");
    assert_eq!(tenant.to_string(), "tenant `acme` already exists");

    store
        .create_module("acme", "decoder", World::Codec)
        .expect("module");
    let module = store
        .create_module("acme", "decoder", World::Router)
        .expect_err("module twice");
    assert!(matches!(
        module,
        StoreError::Conflict { kind: "module", .. }
    ));
    assert_eq!(
        module.to_string(),
        "module `decoder` already exists for tenant `acme`"
    );
    // The same name in another tenant is fine.
    store
        .create_module("globex", "decoder", World::Codec)
        .expect("other tenant");

    store
        .create_binding("acme", &binding_spec("uplinks", "decoder", None))
        .expect("binding");
    let binding = store
        .create_binding("acme", &binding_spec("uplinks", "decoder", None))
        .expect_err("binding twice");
    assert_eq!(
        binding.to_string(),
        "binding `uplinks` already exists for tenant `acme`"
    );
}

#[test]
fn bad_names_are_refused_before_touching_the_database() {
    let store = store_with_tenants();
    let err = store
        .create_module("acme", "my decoder", World::Codec)
        .expect_err("space in name");
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "module name",
                ..
            }
        ),
        "{err:?}"
    );
    let err = store.create_tenant("", "Nobody").expect_err("empty id");
    assert_eq!(err.to_string(), "invalid tenant id: must not be empty");
}

#[test]
fn a_module_in_use_cannot_be_deleted_and_deleting_removes_its_versions() {
    let store = store_with_tenants();
    module_with_version(&store, "acme", "decoder", World::Codec, b"v1");
    store.activate("acme", "decoder", 1).expect("activate");
    store
        .create_binding("acme", &binding_spec("uplinks", "decoder", None))
        .expect("binding");
    let err = store.delete_module("acme", "decoder").expect_err("in use");
    assert_eq!(
        err.to_string(),
        "module `decoder` is used by binding(s) `uplinks`; delete or change them first"
    );
    store
        .delete_binding("acme", "uplinks")
        .expect("delete binding");
    store
        .delete_module("acme", "decoder")
        .expect("delete module");
    assert_eq!(store.get_module("acme", "decoder").expect("get"), None);
    // A module created again under the same name starts from version 1.
    module_with_version(&store, "acme", "decoder", World::Codec, b"fresh");
    let versions = store.list_versions("acme", "decoder").expect("list");
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].version, 1);
    assert!(
        store
            .list_activations("acme", "decoder")
            .expect("history")
            .is_empty()
    );
}
