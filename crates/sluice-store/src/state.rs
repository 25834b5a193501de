use rusqlite::OptionalExtension;
use sluice_runtime::{StateStore, StateStoreError};

use crate::Store;
use crate::db::{check_name, ensure_tenant, now_ms};
use crate::error::{SqlContext, StoreError};

/// Device state of one binding of one tenant, kept in the store's database: the
/// [`StateStore`] a worker hands to that binding's instances.
///
/// Shares the [`Store`]'s connection; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStateStore {
    store: Store,
    tenant_id: String,
    binding: String,
}

impl Store {
    /// The device state of binding `binding` of `tenant`. The tenant must exist; the binding
    /// is a name scope and need not (state outlives a binding until [`Store::state_purge`]).
    pub fn state_store(&self, tenant: &str, binding: &str) -> Result<SqliteStateStore, StoreError> {
        check_name("binding name", binding)?;
        self.read(|conn| ensure_tenant(conn, tenant))?;
        Ok(SqliteStateStore {
            store: self.clone(),
            tenant_id: tenant.to_string(),
            binding: binding.to_string(),
        })
    }

    /// Deletes the device state of `tenant` for one binding, or for all with `None`; returns
    /// how many keys were deleted.
    pub fn state_purge(&self, tenant: &str, binding: Option<&str>) -> Result<u64, StoreError> {
        self.write("purging device state", |tx| {
            let deleted = match binding {
                Some(binding) => tx.execute(
                    "DELETE FROM device_state WHERE tenant_id = ?1 AND binding = ?2",
                    [tenant, binding],
                ),
                None => tx.execute("DELETE FROM device_state WHERE tenant_id = ?1", [tenant]),
            }
            .during("purging device state")?;
            Ok(deleted as u64)
        })
    }
}

/// Bytes the device holds (keys and values), not counting `except_key`.
fn device_bytes_except(
    conn: &rusqlite::Connection,
    scope: &SqliteStateStore,
    device_id: &str,
    except_key: Option<&str>,
) -> Result<u64, StoreError> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(value)), 0) FROM device_state
         WHERE tenant_id = ?1 AND binding = ?2 AND device_id = ?3 AND key IS NOT ?4",
    )
    .and_then(|mut stmt| {
        stmt.query_row(
            rusqlite::params![scope.tenant_id, scope.binding, device_id, except_key],
            |row| row.get(0),
        )
    })
    .during("measuring device state")
}

impl SqliteStateStore {
    /// The tenant this state belongs to.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// The binding this state belongs to.
    pub fn binding(&self) -> &str {
        &self.binding
    }

    /// Bytes (keys and values) held for `device_id`.
    pub fn device_bytes(&self, device_id: &str) -> Result<u64, StoreError> {
        self.store
            .read(|conn| device_bytes_except(conn, self, device_id, None))
    }
}

fn state_error(e: StoreError) -> StateStoreError {
    StateStoreError(e.to_string())
}

impl StateStore for SqliteStateStore {
    fn get(&self, device_id: &str, key: &str) -> Result<Option<Vec<u8>>, StateStoreError> {
        self.store
            .read(|conn| {
                conn.prepare_cached(
                    "SELECT value FROM device_state
                     WHERE tenant_id = ?1 AND binding = ?2 AND device_id = ?3 AND key = ?4",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(
                        rusqlite::params![self.tenant_id, self.binding, device_id, key],
                        |row| row.get(0),
                    )
                    .optional()
                })
                .during("reading device state")
            })
            .map_err(state_error)
    }

    fn set(
        &self,
        device_id: &str,
        key: &str,
        value: &[u8],
        max_device_bytes: u64,
    ) -> Result<bool, StateStoreError> {
        self.store
            .write("writing device state", |tx| {
                let others = device_bytes_except(tx, self, device_id, Some(key))?;
                let total = others
                    .saturating_add(key.len() as u64)
                    .saturating_add(value.len() as u64);
                if total > max_device_bytes {
                    return Ok(false);
                }
                tx.prepare_cached(
                    "INSERT INTO device_state
                         (tenant_id, binding, device_id, key, value, updated_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (tenant_id, binding, device_id, key)
                     DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms",
                )
                .and_then(|mut stmt| {
                    stmt.execute(rusqlite::params![
                        self.tenant_id,
                        self.binding,
                        device_id,
                        key,
                        value,
                        now_ms(),
                    ])
                })
                .during("writing device state")?;
                Ok(true)
            })
            .map_err(state_error)
    }

    fn delete(&self, device_id: &str, key: &str) -> Result<(), StateStoreError> {
        self.store
            .write("deleting device state", |tx| {
                tx.prepare_cached(
                    "DELETE FROM device_state
                     WHERE tenant_id = ?1 AND binding = ?2 AND device_id = ?3 AND key = ?4",
                )
                .and_then(|mut stmt| {
                    stmt.execute(rusqlite::params![
                        self.tenant_id,
                        self.binding,
                        device_id,
                        key
                    ])
                })
                .during("deleting device state")?;
                Ok(())
            })
            .map_err(state_error)
    }
}
