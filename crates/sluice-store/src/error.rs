use std::path::PathBuf;

/// Everything the store can fail with. Each variant names the object or step that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or configured.
    #[error("cannot open the store at `{path}`: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The database was written by a newer Sluice whose schema this build does not know.
    #[error(
        "the store's schema is version {found}, newer than the newest this build knows ({supported}); \
         run a Sluice at least as new as the one that last wrote it, or restore a backup"
    )]
    SchemaTooNew {
        /// The version recorded in the database.
        found: u32,
        /// The newest version this build can migrate to.
        supported: u32,
    },
    /// The file is a SQLite database that belongs to another application.
    #[error(
        "`{path}` is a SQLite database of another application (application_id {application_id:#x}), not a Sluice store"
    )]
    NotASluiceStore {
        /// The database file.
        path: PathBuf,
        /// The application id the file carries.
        application_id: i32,
    },
    /// A migration failed; the database is left at the version before it.
    #[error("migration to schema version {version} failed: {source}")]
    Migration {
        /// The version the migration would have reached.
        version: u32,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A SQLite call failed while doing `action`.
    #[error("store failed while {action}: {source}")]
    Sqlite {
        /// What the store was doing (e.g. "creating a binding").
        action: &'static str,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A value stored as JSON could not be encoded or decoded.
    #[error("{what} is not valid JSON for its type: {source}")]
    Json {
        /// Which value (e.g. "module policy").
        what: &'static str,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// An argument is not acceptable.
    #[error("invalid {field}: {problem}")]
    Invalid {
        /// The argument (e.g. "tenant id").
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The operating system could not provide random bytes for a token.
    #[error("cannot generate a token secret: {0}")]
    Random(String),
    /// The tenant does not exist.
    #[error("tenant `{tenant}` does not exist")]
    UnknownTenant {
        /// The tenant id.
        tenant: String,
    },
    /// An object with this name already exists.
    #[error("{kind} `{name}` already exists{}", in_tenant(tenant))]
    Conflict {
        /// What kind of object ("tenant", "module", "binding").
        kind: &'static str,
        /// The tenant it belongs to, when it belongs to one.
        tenant: Option<String>,
        /// The name that is taken.
        name: String,
    },
    /// The module does not exist for this tenant.
    #[error("module `{module}` does not exist for tenant `{tenant}`")]
    ModuleNotFound {
        /// The tenant id.
        tenant: String,
        /// The module name.
        module: String,
    },
    /// The module has no such version.
    #[error("module `{module}` of tenant `{tenant}` has no version {version}")]
    VersionNotFound {
        /// The tenant id.
        tenant: String,
        /// The module name.
        module: String,
        /// The version asked for.
        version: u32,
    },
    /// Rollback asked of a module that has had at most one version active.
    #[error(
        "module `{module}` of tenant `{tenant}` has no previously active version to roll back to"
    )]
    NoPreviousVersion {
        /// The tenant id.
        tenant: String,
        /// The module name.
        module: String,
    },
    /// A module is referenced where a module of another world is required.
    #[error("module `{module}` is a {found}, but a {expected} is required here")]
    WrongWorld {
        /// The module name.
        module: String,
        /// The world required.
        expected: &'static str,
        /// The module's world.
        found: &'static str,
    },
    /// The module cannot be deleted while bindings use it.
    #[error("module `{module}` is used by binding(s) {bindings}; delete or change them first")]
    ModuleInUse {
        /// The module name.
        module: String,
        /// The bindings that use it, comma separated.
        bindings: String,
    },
    /// The binding does not exist for this tenant.
    #[error("binding `{binding}` does not exist for tenant `{tenant}`")]
    BindingNotFound {
        /// The tenant id.
        tenant: String,
        /// The binding name.
        binding: String,
    },
    /// The API token does not exist (or belongs to another tenant).
    #[error("API token `{id}` does not exist")]
    TokenNotFound {
        /// The token id.
        id: String,
    },
    /// The dead-letter entry does not exist for this tenant.
    #[error("dead-letter entry {id} does not exist for tenant `{tenant}`")]
    DeadLetterNotFound {
        /// The tenant id.
        tenant: String,
        /// The entry id.
        id: i64,
    },
}

fn in_tenant(tenant: &Option<String>) -> String {
    match tenant {
        Some(t) => format!(" for tenant `{t}`"),
        None => String::new(),
    }
}

/// Adds what the store was doing to a SQLite error.
pub(crate) trait SqlContext<T> {
    /// Maps the error to [`StoreError::Sqlite`] naming `action`.
    fn during(self, action: &'static str) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for Result<T, rusqlite::Error> {
    fn during(self, action: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite { action, source })
    }
}

/// Whether `e` is a UNIQUE or PRIMARY KEY constraint violation.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(err, _)
            if err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// `value` as JSON text; `what` names it in the error.
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Json { what, source })
}

/// `text` parsed as JSON into `T`; `what` names it in the error.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Json { what, source })
}
