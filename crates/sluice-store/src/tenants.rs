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
    /// The tenant-wide throttle budget shared by all its bindings (its shape is the
    /// pipeline's `ThrottleConfig`), if an operator set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<serde_json::Value>,
}

/// The columns [`tenant_from_row`] reads, in order.
const TENANT_COLUMNS: &str = "id, name, created_at_ms, throttle_json";

fn tenant_from_row(row: &Row<'_>) -> rusqlite::Result<Tenant> {
    let throttle: Option<String> = row.get(3)?;
    let throttle = throttle
        .map(|json| {
            serde_json::from_str(&json).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, e.into())
            })
        })
        .transpose()?;
    Ok(Tenant {
        id: row.get(0)?,
        name: row.get(1)?,
        created_at_ms: row.get(2)?,
        throttle,
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
            throttle: None,
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
                &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?1"),
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
                .prepare(&format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id"))
                .during("listing tenants")?;
            stmt.query_map([], tenant_from_row)
                .during("listing tenants")?
                .collect::<Result<_, _>>()
                .during("listing tenants")
        })
    }

    /// Sets (or with `None` removes) tenant `id`'s throttle budget and returns the tenant.
    pub fn set_tenant_throttle(
        &self,
        id: &str,
        throttle: Option<&serde_json::Value>,
    ) -> Result<Tenant, StoreError> {
        let json = throttle.map(serde_json::Value::to_string);
        let changed = self.write("setting a tenant's throttle", |tx| {
            tx.execute(
                "UPDATE tenants SET throttle_json = ?2 WHERE id = ?1",
                rusqlite::params![id, json],
            )
            .during("setting a tenant's throttle")
        })?;
        if changed == 0 {
            return Err(StoreError::UnknownTenant {
                tenant: id.to_string(),
            });
        }
        self.get_tenant(id)?
            .ok_or_else(|| StoreError::UnknownTenant {
                tenant: id.to_string(),
            })
    }
}
