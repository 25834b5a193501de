//! Sluice's embedded store, on one SQLite database:
//!
//! - the **registry**: tenants, hashed API tokens, modules with immutable versions and an
//!   active-version pointer (with activation history and rollback), and bindings;
//! - the **dead-letter queue**: messages that could not be delivered, with the typed
//!   [`sluice_types::GuestFailure`] that stopped them;
//! - **device state**: [`SqliteStateStore`], the runtime's [`sluice_runtime::StateStore`] for
//!   one binding.
//!
//! Every call on a tenant's objects takes the tenant id and sees only that tenant's rows:
//! another tenant's module, binding or dead letter is simply not found.
//!
//! The schema is versioned (`PRAGMA user_version`) and migrated forward on open; see
//! `docs/storage.md`.

mod bindings;
mod db;
mod dlq;
mod error;
mod modules;
mod state;
mod tenants;
mod tokens;

pub use bindings::{Binding, BindingSpec};
pub use db::{APPLICATION_ID, SCHEMA_VERSION, Store};
pub use dlq::{DeadLetter, MAX_DLQ_PAGE, NewDeadLetter};
pub use error::StoreError;
pub use modules::{
    Activation, Module, ModuleVersion, NewVersion, Source, SourceLanguage, Upload, VersionInfo,
};
pub use state::SqliteStateStore;
pub use tenants::Tenant;
pub use tokens::{TOKEN_PREFIX, TokenId, TokenInfo, TokenScope};
