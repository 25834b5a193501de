use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::{SqlContext, StoreError};

/// The schema migrations, in order. Migration `i` (0-based) takes the schema from version `i`
/// to version `i + 1`. Released migrations are never edited: a change is a new entry.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_binding_sources.sql"),
    include_str!("migrations/0003_binding_policy.sql"),
    include_str!("migrations/0004_tenant_throttle.sql"),
    include_str!("migrations/0005_version_source.sql"),
];

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Marks a SQLite file as a Sluice store (`PRAGMA application_id`, the ASCII bytes "SLCE").
pub const APPLICATION_ID: i32 = 0x534c_4345;

/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The Sluice store: registry, dead-letter queue and device state in one SQLite database.
///
/// Cloning is cheap and shares the connection; every call takes the connection's lock for
/// its duration, so calls from many threads are serialized.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path` and migrates it to [`SCHEMA_VERSION`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Self::init(conn, path)
    }

    /// A fresh store that lives in memory and disappears with its last clone.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Self::init(conn, path)
    }

    fn init(mut conn: Connection, path: PathBuf) -> Result<Self, StoreError> {
        let open_failed = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_failed)?;
        // Before changing anything (journal mode included), make sure the file is ours.
        let application_id: i32 = conn
            .pragma_query_value(None, "application_id", |row| row.get(0))
            .map_err(open_failed)?;
        if application_id != 0 && application_id != APPLICATION_ID {
            return Err(StoreError::NotASluiceStore {
                path,
                application_id,
            });
        }
        configure(&conn).map_err(open_failed)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        user_version(&self.lock()).during("reading the schema version")
    }

    /// The connection, locked for the caller.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half-done write behind: every write runs in
        // a transaction, which rolls back when dropped during unwinding.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in an immediate (write-locking) transaction and commits when it succeeds.
    pub(crate) fn write<T>(
        &self,
        action: &'static str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .during(action)?;
        let value = f(&tx)?;
        tx.commit().during(action)?;
        Ok(value)
    }

    /// Runs `f` on the connection for reads.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&self.lock())
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // `journal_mode` answers with the mode now in force ("memory" for in-memory databases).
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Applies the migrations the database has not seen yet, each in its own transaction.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    apply_migrations(conn, MIGRATIONS)
}

/// Applies `migrations[v..]` to a database at version `v`; see [`MIGRATIONS`].
fn apply_migrations(conn: &mut Connection, migrations: &[&str]) -> Result<(), StoreError> {
    let supported = migrations.len() as u32;
    let found = user_version(conn).during("reading the schema version")?;
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    for (index, sql) in migrations.iter().enumerate().skip(found as usize) {
        let version = index as u32 + 1;
        let failed = |source| StoreError::Migration { version, source };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)
            .map_err(failed)?;
        // Another process may have migrated while we waited for the lock.
        if user_version(&tx).map_err(failed)? >= version {
            continue;
        }
        tx.execute_batch(sql).map_err(failed)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(failed)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Checks that `tenant` exists.
pub(crate) fn ensure_tenant(conn: &Connection, tenant: &str) -> Result<(), StoreError> {
    let found = conn
        .query_row("SELECT 1 FROM tenants WHERE id = ?1", [tenant], |_| Ok(()))
        .optional()
        .during("looking up a tenant")?;
    match found {
        Some(()) => Ok(()),
        None => Err(StoreError::UnknownTenant {
            tenant: tenant.to_string(),
        }),
    }
}

/// Checks a tenant id, module name or binding name: 1 to 64 ASCII letters, digits, `-`, `_`
/// or `.`, starting with a letter or digit. Names appear in URLs, metrics labels and token
/// listings, so they are kept plain.
pub(crate) fn check_name(field: &'static str, value: &str) -> Result<(), StoreError> {
    let invalid = |problem: String| Err(StoreError::Invalid { field, problem });
    if value.is_empty() {
        return invalid("must not be empty".into());
    }
    if value.len() > 64 {
        return invalid(format!("`{value}` is longer than 64 bytes"));
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return invalid(format!("`{value}` must start with a letter or a digit"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return invalid(format!(
            "`{value}` contains {c:?}; use letters, digits, `-`, `_` or `.`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_names(store: &Store) -> Vec<String> {
        let conn = store.lock();
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .expect("prepare");
        stmt.query_map([], |row| row.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[test]
    fn open_in_memory_applies_every_migration() {
        let store = Store::open_in_memory().expect("open");
        assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
        let tables = table_names(&store);
        for table in [
            "api_tokens",
            "bindings",
            "dead_letters",
            "device_state",
            "module_activations",
            "module_versions",
            "modules",
            "tenants",
        ] {
            assert!(tables.iter().any(|t| t == table), "missing {table}");
        }
    }

    #[test]
    fn foreign_keys_are_enforced() {
        let store = Store::open_in_memory().expect("open");
        let on: bool = store
            .lock()
            .pragma_query_value(None, "foreign_keys", |row| row.get(0))
            .expect("pragma");
        assert!(on);
    }

    #[test]
    fn each_migration_applies_once_and_a_failed_one_changes_nothing() {
        let mut conn = Connection::open_in_memory().expect("open");
        let migrations = [
            "CREATE TABLE a (x INTEGER)",
            "CREATE TABLE b (x INTEGER); CREATE TABLE broken (",
        ];
        let err = apply_migrations(&mut conn, &migrations).expect_err("second fails");
        assert!(
            matches!(err, StoreError::Migration { version: 2, .. }),
            "{err:?}"
        );
        assert_eq!(user_version(&conn).expect("version"), 1);
        let b_exists: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'b')",
                [],
                |row| row.get(0),
            )
            .expect("query");
        assert!(!b_exists, "the failed migration was rolled back");

        // Fixed, it applies; applying again does nothing (re-creating `a` would fail).
        let fixed = ["CREATE TABLE a (x INTEGER)", "CREATE TABLE b (x INTEGER)"];
        apply_migrations(&mut conn, &fixed).expect("apply");
        apply_migrations(&mut conn, &fixed).expect("idempotent");
        assert_eq!(user_version(&conn).expect("version"), 2);
        let err = apply_migrations(&mut conn, &fixed[..1]).expect_err("older code");
        assert!(
            matches!(
                err,
                StoreError::SchemaTooNew {
                    found: 2,
                    supported: 1
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn check_name_accepts_plain_names_and_explains_bad_ones() {
        assert!(check_name("tenant id", "acme-01.eu_west").is_ok());
        let err = check_name("tenant id", "a/b").expect_err("slash");
        assert_eq!(
            err.to_string(),
            "invalid tenant id: `a/b` contains '/'; use letters, digits, `-`, `_` or `.`"
        );
        assert!(check_name("tenant id", "").is_err());
        assert!(check_name("tenant id", "-x").is_err());
        assert!(check_name("tenant id", &"a".repeat(65)).is_err());
    }
}
