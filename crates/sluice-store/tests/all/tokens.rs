use rusqlite::types::ValueRef;
use sha2::{Digest, Sha256};
use sluice_store::{StoreError, TokenId, TokenScope};

use crate::support::FileStore;

/// Every cell of `api_tokens`, as bytes.
fn token_table_cells(fs: &FileStore) -> Vec<Vec<u8>> {
    let raw = fs.raw();
    let mut stmt = raw.prepare("SELECT * FROM api_tokens").expect("prepare");
    let columns = stmt.column_count();
    let mut rows = stmt.query([]).expect("query");
    let mut cells = Vec::new();
    while let Some(row) = rows.next().expect("row") {
        for i in 0..columns {
            cells.push(match row.get_ref(i).expect("cell") {
                ValueRef::Text(t) | ValueRef::Blob(t) => t.to_vec(),
                ValueRef::Integer(n) => n.to_string().into_bytes(),
                ValueRef::Real(r) => r.to_string().into_bytes(),
                ValueRef::Null => Vec::new(),
            });
        }
    }
    cells
}

#[test]
fn tokens_authenticate_and_the_database_holds_only_their_hash() {
    let fs = FileStore::new();
    fs.store.create_tenant("acme", "Acme").expect("tenant");
    let (id, secret) = fs
        .store
        .create_token(Some("acme"), TokenScope::Tenant)
        .expect("token");
    assert!(secret.starts_with(&format!("slc_{id}_")), "{secret}");
    assert_eq!(secret.len(), "slc_".len() + 16 + 1 + 64);

    let info = fs
        .store
        .authenticate(&secret)
        .expect("authenticate")
        .expect("valid token");
    assert_eq!(info.id, id);
    assert_eq!(info.scope, TokenScope::Tenant);
    assert_eq!(info.tenant_id.as_deref(), Some("acme"));

    // The random part of the secret appears nowhere: not in any cell, not in the files.
    let random_part = secret.rsplit('_').next().expect("random part");
    let random_bytes = hex::decode(random_part).expect("hex");
    let cells = token_table_cells(&fs);
    assert!(cells.contains(&Sha256::digest(secret.as_bytes()).to_vec()));
    for cell in &cells {
        for needle in [random_part.as_bytes(), &random_bytes[..]] {
            assert!(
                !cell.windows(needle.len()).any(|w| w == needle),
                "a token cell holds the secret"
            );
        }
    }
    for file in ["sluice.db", "sluice.db-wal"] {
        let bytes = std::fs::read(fs.path.with_file_name(file)).unwrap_or_default();
        assert!(
            !bytes
                .windows(random_part.len())
                .any(|w| w == random_part.as_bytes()),
            "{file} holds the secret"
        );
    }
}

#[test]
fn revoked_tokens_no_longer_authenticate() {
    let fs = FileStore::new();
    let (id, secret) = fs
        .store
        .create_token(None, TokenScope::Admin)
        .expect("token");
    fs.store.revoke_token(&id).expect("revoke");
    assert_eq!(fs.store.authenticate(&secret).expect("authenticate"), None);
    let listed = fs.store.list_tokens(None).expect("list");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked_at_ms.is_some());
}

#[test]
fn a_token_is_read_by_id_revoked_or_not_and_an_unknown_id_is_none() {
    let fs = FileStore::new();
    fs.store.create_tenant("acme", "Acme").expect("tenant");
    let (id, _) = fs
        .store
        .create_token(Some("acme"), TokenScope::ReadOnly)
        .expect("token");
    let info = fs.store.get_token(&id).expect("get").expect("exists");
    assert_eq!(info.id, id);
    assert_eq!(info.scope, TokenScope::ReadOnly);
    assert_eq!(info.tenant_id.as_deref(), Some("acme"));
    assert!(info.created_at_ms > 0);
    assert_eq!(info.revoked_at_ms, None);

    fs.store.revoke_token(&id).expect("revoke");
    let revoked = fs.store.get_token(&id).expect("get").expect("still exists");
    assert!(revoked.revoked_at_ms.is_some());
    assert_eq!(
        fs.store
            .get_token(&TokenId("0123456789abcdef".into()))
            .expect("get"),
        None
    );
}

#[test]
fn wrong_and_malformed_secrets_do_not_authenticate() {
    let fs = FileStore::new();
    let (_, secret) = fs
        .store
        .create_token(None, TokenScope::ReadOnly)
        .expect("token");
    let (_, other) = fs
        .store
        .create_token(None, TokenScope::ReadOnly)
        .expect("token");
    let last = secret.chars().last().expect("last char");
    let tampered = format!(
        "{}{}",
        &secret[..secret.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    // Right id, random part of another token.
    let spliced = format!(
        "{}{}",
        &secret[..secret.len() - 64],
        &other[other.len() - 64..]
    );
    for bad in [
        tampered.as_str(),
        spliced.as_str(),
        "",
        "slc_",
        "bearer nonsense",
        &secret[..secret.len() - 1],
    ] {
        assert_eq!(
            fs.store.authenticate(bad).expect("authenticate"),
            None,
            "{bad}"
        );
    }
    assert!(fs.store.authenticate(&secret).expect("auth").is_some());
}

#[test]
fn token_scopes_and_tenants_are_checked() {
    let fs = FileStore::new();
    fs.store.create_tenant("acme", "Acme").expect("tenant");
    let admin_with_tenant = fs
        .store
        .create_token(Some("acme"), TokenScope::Admin)
        .expect_err("admin bound to a tenant");
    assert!(matches!(admin_with_tenant, StoreError::Invalid { .. }));
    let tenant_without = fs
        .store
        .create_token(None, TokenScope::Tenant)
        .expect_err("tenant token without tenant");
    assert_eq!(
        tenant_without.to_string(),
        "invalid token scope: a tenant token needs a tenant"
    );
    let unknown = fs
        .store
        .create_token(Some("ghost"), TokenScope::Tenant)
        .expect_err("unknown tenant");
    assert_eq!(unknown.to_string(), "tenant `ghost` does not exist");
}

#[test]
fn a_tenant_cannot_revoke_another_tenants_token() {
    let fs = FileStore::new();
    fs.store.create_tenant("acme", "Acme").expect("tenant");
    fs.store.create_tenant("globex", "Globex").expect("tenant");
    let (id, secret) = fs
        .store
        .create_token(Some("globex"), TokenScope::Tenant)
        .expect("token");
    let err = fs
        .store
        .revoke_tenant_token("acme", &id)
        .expect_err("other tenant");
    assert!(matches!(err, StoreError::TokenNotFound { .. }), "{err:?}");
    assert!(fs.store.authenticate(&secret).expect("auth").is_some());
    assert!(fs.store.list_tokens(Some("acme")).expect("list").is_empty());
    fs.store
        .revoke_tenant_token("globex", &id)
        .expect("own token");
    assert_eq!(fs.store.authenticate(&secret).expect("auth"), None);
}
