use rusqlite::{OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use sluice_types::{GuestFailure, ModuleRef, Uplink};

use crate::Store;
use crate::db::{check_name, ensure_tenant, now_ms};
use crate::error::{SqlContext, StoreError, from_json, to_json};

/// The most entries one [`Store::dlq_list`] call returns.
pub const MAX_DLQ_PAGE: u32 = 1000;

/// A message to dead-letter: the input of [`Store::dlq_put`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDeadLetter {
    /// The owning tenant.
    pub tenant_id: String,
    /// The binding the message arrived on.
    pub binding: String,
    /// The message as the source received it (device, port, received-at, payload, metadata).
    pub uplink: Uplink,
    /// Why it could not be delivered.
    pub failure: GuestFailure,
    /// The module (and version) that failed.
    pub module: ModuleRef,
    /// How many times delivery was tried.
    pub attempts: u32,
}

/// A dead-lettered message as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The entry id: increasing, never reused.
    pub id: i64,
    /// The owning tenant.
    pub tenant_id: String,
    /// The binding the message arrived on.
    pub binding: String,
    /// The message as the source received it.
    pub uplink: Uplink,
    /// Why it could not be delivered.
    pub failure: GuestFailure,
    /// [`GuestFailure::kind`] of `failure`, kept in its own column for filtering and counting.
    pub failure_kind: String,
    /// The module (and version) that failed.
    pub module: ModuleRef,
    /// How many times delivery was tried.
    pub attempts: u32,
    /// When the entry was written, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

const DLQ_COLUMNS: &str = "id, tenant_id, binding, device_id, port, received_at_ms, payload,
    metadata_json, failure_kind, failure_json, module_id, module_version, attempts, created_at_ms";

/// A row as stored: metadata and failure still JSON text.
struct RawDeadLetter {
    id: i64,
    tenant_id: String,
    binding: String,
    device_id: String,
    port: u16,
    received_at_ms: u64,
    payload: Vec<u8>,
    metadata_json: String,
    failure_kind: String,
    failure_json: String,
    module_id: String,
    module_version: String,
    attempts: u32,
    created_at_ms: u64,
}

fn raw_from_row(row: &Row<'_>) -> rusqlite::Result<RawDeadLetter> {
    Ok(RawDeadLetter {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        binding: row.get(2)?,
        device_id: row.get(3)?,
        port: row.get(4)?,
        received_at_ms: row.get(5)?,
        payload: row.get(6)?,
        metadata_json: row.get(7)?,
        failure_kind: row.get(8)?,
        failure_json: row.get(9)?,
        module_id: row.get(10)?,
        module_version: row.get(11)?,
        attempts: row.get(12)?,
        created_at_ms: row.get(13)?,
    })
}

impl RawDeadLetter {
    fn decode(self) -> Result<DeadLetter, StoreError> {
        Ok(DeadLetter {
            id: self.id,
            tenant_id: self.tenant_id,
            binding: self.binding,
            uplink: Uplink {
                device_id: self.device_id,
                port: self.port,
                received_at_ms: self.received_at_ms,
                payload: self.payload,
                metadata: from_json("dead-letter metadata", &self.metadata_json)?,
            },
            failure: from_json("dead-letter failure", &self.failure_json)?,
            failure_kind: self.failure_kind,
            module: ModuleRef::new(self.module_id, self.module_version),
            attempts: self.attempts,
            created_at_ms: self.created_at_ms,
        })
    }
}

impl Store {
    /// Writes `entry` to the dead-letter queue and returns its id. Once this returns, the
    /// entry is committed and the message may be acknowledged upstream.
    pub fn dlq_put(&self, entry: &NewDeadLetter) -> Result<i64, StoreError> {
        check_name("binding name", &entry.binding)?;
        let metadata_json = to_json("dead-letter metadata", &entry.uplink.metadata)?;
        let failure_json = to_json("dead-letter failure", &entry.failure)?;
        self.write("writing a dead letter", |tx| {
            ensure_tenant(tx, &entry.tenant_id)?;
            tx.execute(
                "INSERT INTO dead_letters (tenant_id, binding, device_id, port, received_at_ms,
                     payload, metadata_json, failure_kind, failure_json, module_id,
                     module_version, attempts, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                rusqlite::params![
                    entry.tenant_id,
                    entry.binding,
                    entry.uplink.device_id,
                    entry.uplink.port,
                    entry.uplink.received_at_ms,
                    entry.uplink.payload,
                    metadata_json,
                    entry.failure.kind(),
                    failure_json,
                    entry.module.id,
                    entry.module.version,
                    entry.attempts,
                    now_ms(),
                ],
            )
            .during("writing a dead letter")?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Up to `limit` (at most [`MAX_DLQ_PAGE`]) entries of `tenant`, of one binding or all,
    /// with ids greater than `after_id`, oldest first. Pass the last id of a page as
    /// `after_id` to get the next one.
    pub fn dlq_list(
        &self,
        tenant: &str,
        binding: Option<&str>,
        limit: u32,
        after_id: Option<i64>,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let limit = limit.min(MAX_DLQ_PAGE);
        let after_id = after_id.unwrap_or(0);
        self.read(|conn| {
            let rows = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
                let mut stmt = conn.prepare_cached(sql).during("listing dead letters")?;
                stmt.query_map(params, raw_from_row)
                    .during("listing dead letters")?
                    .collect::<Result<Vec<_>, _>>()
                    .during("listing dead letters")
            };
            // One statement per case rather than `(?2 IS NULL OR binding = ?2)`, so that each
            // walks its index in id order.
            let raws = match binding {
                Some(binding) => rows(
                    &format!(
                        "SELECT {DLQ_COLUMNS} FROM dead_letters
                         WHERE tenant_id = ?1 AND binding = ?2 AND id > ?3 ORDER BY id LIMIT ?4"
                    ),
                    rusqlite::params![tenant, binding, after_id, limit],
                )?,
                None => rows(
                    &format!(
                        "SELECT {DLQ_COLUMNS} FROM dead_letters
                         WHERE tenant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                    ),
                    rusqlite::params![tenant, after_id, limit],
                )?,
            };
            raws.into_iter().map(RawDeadLetter::decode).collect()
        })
    }

    /// The entry `id` of `tenant`, if it exists.
    pub fn dlq_get(&self, tenant: &str, id: i64) -> Result<Option<DeadLetter>, StoreError> {
        self.read(|conn| {
            conn.query_row(
                &format!("SELECT {DLQ_COLUMNS} FROM dead_letters WHERE tenant_id = ?1 AND id = ?2"),
                rusqlite::params![tenant, id],
                raw_from_row,
            )
            .optional()
            .during("reading a dead letter")?
            .map(RawDeadLetter::decode)
            .transpose()
        })
    }

    /// Deletes the entry `id` of `tenant` (e.g. after a successful replay).
    pub fn dlq_delete(&self, tenant: &str, id: i64) -> Result<(), StoreError> {
        self.write("deleting a dead letter", |tx| {
            let changed = tx
                .execute(
                    "DELETE FROM dead_letters WHERE tenant_id = ?1 AND id = ?2",
                    rusqlite::params![tenant, id],
                )
                .during("deleting a dead letter")?;
            if changed == 0 {
                return Err(StoreError::DeadLetterNotFound {
                    tenant: tenant.to_string(),
                    id,
                });
            }
            Ok(())
        })
    }

    /// Deletes every entry of `tenant` for one binding, or for all with `None`; returns how
    /// many were deleted.
    pub fn dlq_purge(&self, tenant: &str, binding: Option<&str>) -> Result<u64, StoreError> {
        self.write("purging dead letters", |tx| {
            let deleted = tx
                .execute(
                    "DELETE FROM dead_letters WHERE tenant_id = ?1 AND (?2 IS NULL OR binding = ?2)",
                    rusqlite::params![tenant, binding],
                )
                .during("purging dead letters")?;
            Ok(deleted as u64)
        })
    }

    /// How many entries `tenant` has for one binding, or for all with `None`.
    pub fn dlq_depth(&self, tenant: &str, binding: Option<&str>) -> Result<u64, StoreError> {
        self.read(|conn| {
            let count = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
                conn.prepare_cached(sql)
                    .and_then(|mut stmt| stmt.query_row(params, |row| row.get(0)))
                    .during("counting dead letters")
            };
            match binding {
                Some(binding) => count(
                    "SELECT COUNT(*) FROM dead_letters WHERE tenant_id = ?1 AND binding = ?2",
                    rusqlite::params![tenant, binding],
                ),
                None => count(
                    "SELECT COUNT(*) FROM dead_letters WHERE tenant_id = ?1",
                    rusqlite::params![tenant],
                ),
            }
        })
    }
}
