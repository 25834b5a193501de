use sluice_store::{SCHEMA_VERSION, Store, StoreError};

use crate::support::FileStore;

#[test]
fn opening_a_new_file_migrates_it_to_the_current_schema_in_wal_mode() {
    let fs = FileStore::new();
    assert_eq!(fs.store.schema_version().expect("version"), SCHEMA_VERSION);
    let raw = fs.raw();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .expect("journal mode");
    assert_eq!(mode, "wal");
    let version: u32 = raw
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("user_version");
    assert_eq!(version, SCHEMA_VERSION);
}

#[test]
fn reopening_keeps_the_data_and_applies_no_migration_twice() {
    let fs = FileStore::new();
    fs.store.create_tenant("acme", "Acme").expect("tenant");
    // A migration applied twice would fail on `CREATE TABLE` of an existing table.
    let fs = fs.reopen().reopen();
    assert_eq!(fs.store.schema_version().expect("version"), SCHEMA_VERSION);
    assert_eq!(
        fs.store.get_tenant("acme").expect("get").map(|t| t.name),
        Some("Acme".to_string())
    );
}

#[test]
fn a_store_written_by_a_newer_sluice_is_refused_with_a_clear_message() {
    let fs = FileStore::new();
    fs.raw()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("bump version");
    let path = fs.path.clone();
    drop(fs.store);
    let err = Store::open(&path).expect_err("newer schema");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found, supported }
            if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the store's schema is version {}, newer than the newest this build knows ({}); \
             run a Sluice at least as new as the one that last wrote it, or restore a backup",
            SCHEMA_VERSION + 1,
            SCHEMA_VERSION
        )
    );
}

#[test]
fn another_applications_database_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.db");
    let raw = rusqlite::Connection::open(&path).expect("raw");
    raw.pragma_update(None, "application_id", 42)
        .expect("app id");
    raw.execute_batch("CREATE TABLE things (x INTEGER)")
        .expect("table");
    drop(raw);
    let err = Store::open(&path).expect_err("foreign database");
    assert!(
        matches!(
            err,
            StoreError::NotASluiceStore {
                application_id: 42,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("not a Sluice store"), "{err}");
    // The refused file is left as it was: not switched to WAL, not migrated.
    let raw = rusqlite::Connection::open(&path).expect("raw");
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .expect("journal mode");
    assert_eq!(mode, "delete");
    let version: u32 = raw
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("user_version");
    assert_eq!(version, 0);
}

#[test]
fn opening_a_path_that_cannot_exist_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing-dir").join("sluice.db");
    let err = Store::open(&path).expect_err("no parent directory");
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("missing-dir"), "{err}");
}

#[test]
fn clones_share_one_database_across_threads() {
    let store = Store::open_in_memory().expect("open");
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                store
                    .create_tenant(&format!("t{i}"), "Tenant")
                    .expect("create tenant")
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
    assert_eq!(store.list_tenants().expect("list").len(), 4);
}
