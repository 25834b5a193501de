use rusqlite::{OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::Store;
use crate::db::{check_name, now_ms};
use crate::error::{SqlContext, StoreError, is_unique_violation};

/// A customer: owns modules, bindings, tokens, dead letters and device state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Stable id, used in every other call (letters, digits, `-`, `_`, `.`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// When the tenant was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

fn tenant_from_row(row: &Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: row.get(0)?,
        name: row.get(1)?,
        created_at_ms: row.get(2)?,
    })
}

impl Store {
    /// Creates tenant `id` with display name `name`.
    pub fn create_tenant(&self, id: &str, name: &str) -> Result<Tenant, StoreError> {
        check_name("tenant id", id)?;
        if name.trim().is_empty() || name.len() > 256 {
            return Err(StoreError::Invalid {
                field: "tenant name",
                problem: "must be 1 to 256 bytes and not only spaces".into(),
            });
        }
        let tenant = Tenant {
            id: id.to_string(),
            name: name.to_string(),
            created_at_ms: now_ms(),
        };
        self.write("creating a tenant", |tx| {
            tx.execute(
                "INSERT INTO tenants (id, name, created_at_ms) VALUES (?1, ?2, ?3)",
                rusqlite::params![tenant.id, tenant.name, tenant.created_at_ms],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict {
                        kind: "tenant",
                        tenant: None,
                        name: id.to_string(),
                    }
                } else {
                    StoreError::Sqlite {
                        action: "creating a tenant",
                        source: e,
                    }
                }
            })?;
            Ok(())
        })?;
        Ok(tenant)
    }

    /// The tenant `id`, if it exists.
    pub fn get_tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT id, name, created_at_ms FROM tenants WHERE id = ?1",
                [id],
                tenant_from_row,
            )
            .optional()
            .during("reading a tenant")
        })
    }

    /// Every tenant, ordered by id.
    pub fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT id, name, created_at_ms FROM tenants ORDER BY id")
                .during("listing tenants")?;
            stmt.query_map([], tenant_from_row)
                .during("listing tenants")?
                .collect::<Result<_, _>>()
                .during("listing tenants")
        })
    }
}
