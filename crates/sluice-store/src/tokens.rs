use rusqlite::{OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Store;
use crate::db::{ensure_tenant, now_ms};
use crate::error::{SqlContext, StoreError};

/// Every secret starts with this, so leaked tokens are easy to recognise and scan for.
pub const TOKEN_PREFIX: &str = "slc_";

/// Random bytes in a token id (shown as hex).
const ID_BYTES: usize = 8;
/// Random bytes in a token secret (shown as hex).
const SECRET_BYTES: usize = 32;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenScope {
    /// Everything, across all tenants. Never bound to a tenant.
    Admin,
    /// Read and change one tenant's objects. Always bound to a tenant.
    Tenant,
    /// Read only: one tenant's objects when bound to a tenant, every tenant's otherwise.
    ReadOnly,
}

impl TokenScope {
    /// The scope's stable name: `admin`, `tenant` or `read-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Admin => "admin",
            TokenScope::Tenant => "tenant",
            TokenScope::ReadOnly => "read-only",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(TokenScope::Admin),
            "tenant" => Some(TokenScope::Tenant),
            "read-only" => Some(TokenScope::ReadOnly),
            _ => None,
        }
    }
}

impl std::fmt::Display for TokenScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The public id of an API token (16 hex digits). It is part of the secret, and is safe to
/// show and log; the rest of the secret is not.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenId(pub String);

impl std::fmt::Display for TokenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the store knows about a token: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The token id.
    pub id: TokenId,
    /// What it may do.
    pub scope: TokenScope,
    /// The tenant it is bound to, if any.
    pub tenant_id: Option<String>,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When it was revoked, if it was.
    pub revoked_at_ms: Option<u64>,
}

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<(TokenInfo, Vec<u8>)> {
    let scope_text: String = row.get(1)?;
    let scope = TokenScope::parse(&scope_text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            1,
            rusqlite::types::Type::Text,
            format!("unknown token scope `{scope_text}`").into(),
        )
    })?;
    Ok((
        TokenInfo {
            id: TokenId(row.get(0)?),
            scope,
            tenant_id: row.get(2)?,
            created_at_ms: row.get(3)?,
            revoked_at_ms: row.get(4)?,
        },
        row.get(5)?,
    ))
}

const TOKEN_COLUMNS: &str = "id, scope, tenant_id, created_at_ms, revoked_at_ms, secret_sha256";

fn random_hex(len: usize) -> Result<String, StoreError> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

fn sha256(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Compares two hashes in time that depends only on their length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Splits `slc_<id>_<secret>` into the id, or `None` when the text is not shaped like a token.
fn token_id_of(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix(TOKEN_PREFIX)?;
    let (id, random) = rest.split_once('_')?;
    let is_hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (is_hex(id, ID_BYTES * 2) && is_hex(random, SECRET_BYTES * 2)).then_some(id)
}

impl Store {
    /// Creates an API token and returns its id and its secret, `slc_<id>_<64 hex digits>`.
    ///
    /// The secret is returned only here: the store keeps its SHA-256. `admin` tokens take no
    /// tenant, `tenant` tokens need one, `read-only` tokens may have one.
    pub fn create_token(
        &self,
        tenant: Option<&str>,
        scope: TokenScope,
    ) -> Result<(TokenId, String), StoreError> {
        match (scope, tenant) {
            (TokenScope::Admin, Some(t)) => {
                return Err(StoreError::Invalid {
                    field: "token scope",
                    problem: format!(
                        "an admin token spans every tenant and cannot be bound to `{t}`; use the `tenant` scope"
                    ),
                });
            }
            (TokenScope::Tenant, None) => {
                return Err(StoreError::Invalid {
                    field: "token scope",
                    problem: "a tenant token needs a tenant".into(),
                });
            }
            _ => {}
        }
        let id = random_hex(ID_BYTES)?;
        let secret = format!("{TOKEN_PREFIX}{id}_{}", random_hex(SECRET_BYTES)?);
        let hash = sha256(&secret);
        self.write("creating an API token", |tx| {
            if let Some(t) = tenant {
                ensure_tenant(tx, t)?;
            }
            tx.execute(
                "INSERT INTO api_tokens (id, secret_sha256, scope, tenant_id, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![id, hash, scope.as_str(), tenant, now_ms()],
            )
            .during("creating an API token")?;
            Ok(())
        })?;
        Ok((TokenId(id), secret))
    }

    /// The live token whose secret is `secret`, or `None` when the secret is malformed,
    /// unknown, wrong or revoked.
    pub fn authenticate(&self, secret: &str) -> Result<Option<TokenInfo>, StoreError> {
        let Some(id) = token_id_of(secret) else {
            return Ok(None);
        };
        let found = self.read(|conn| {
            conn.query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"),
                [id],
                token_from_row,
            )
            .optional()
            .during("authenticating an API token")
        })?;
        let Some((info, stored_hash)) = found else {
            return Ok(None);
        };
        if !constant_time_eq(&sha256(secret), &stored_hash) || info.revoked_at_ms.is_some() {
            return Ok(None);
        }
        Ok(Some(info))
    }

    /// What the store knows about token `id` (revoked or not), if it exists. Never its secret.
    pub fn get_token(&self, id: &TokenId) -> Result<Option<TokenInfo>, StoreError> {
        self.read(|conn| {
            conn.query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"),
                [&id.0],
                token_from_row,
            )
            .optional()
            .during("reading an API token")
        })
        .map(|found| found.map(|(info, _)| info))
    }

    /// Revokes token `id`, whichever tenant it belongs to (an admin action). Revoking twice
    /// keeps the first revocation time.
    pub fn revoke_token(&self, id: &TokenId) -> Result<(), StoreError> {
        self.revoke(None, id)
    }

    /// Revokes token `id` if it belongs to `tenant`; another tenant's token is not found.
    pub fn revoke_tenant_token(&self, tenant: &str, id: &TokenId) -> Result<(), StoreError> {
        self.revoke(Some(tenant), id)
    }

    fn revoke(&self, tenant: Option<&str>, id: &TokenId) -> Result<(), StoreError> {
        self.write("revoking an API token", |tx| {
            let changed = tx
                .execute(
                    "UPDATE api_tokens SET revoked_at_ms = COALESCE(revoked_at_ms, ?1)
                     WHERE id = ?2 AND (?3 IS NULL OR tenant_id = ?3)",
                    rusqlite::params![now_ms(), id.0, tenant],
                )
                .during("revoking an API token")?;
            if changed == 0 {
                return Err(StoreError::TokenNotFound { id: id.0.clone() });
            }
            Ok(())
        })
    }

    /// The tokens bound to `tenant` (or, for `None`, every token), revoked ones included,
    /// oldest first.
    pub fn list_tokens(&self, tenant: Option<&str>) -> Result<Vec<TokenInfo>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens
                     WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY created_at_ms, id"
                ))
                .during("listing API tokens")?;
            stmt.query_map([tenant], token_from_row)
                .during("listing API tokens")?
                .map(|row| row.map(|(info, _)| info))
                .collect::<Result<_, _>>()
                .during("listing API tokens")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_id_of_accepts_only_well_formed_secrets() {
        let id = "0123456789abcdef";
        let good = format!("slc_{id}_{}", "a".repeat(64));
        assert_eq!(token_id_of(&good), Some(id));
        assert_eq!(token_id_of(&good[..good.len() - 1]), None);
        assert_eq!(token_id_of(&good.replace("slc_", "xyz_")), None);
        assert_eq!(token_id_of("slc_"), None);
        assert_eq!(token_id_of(""), None);
    }

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
