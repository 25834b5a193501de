use rusqlite::{Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sluice_types::{ModulePolicy, World};

use crate::Store;
use crate::db::{check_name, ensure_tenant, now_ms};
use crate::error::{SqlContext, StoreError, is_unique_violation};

/// A tenant's named codec or router. Its code lives in immutable [`ModuleVersion`]s; one of
/// them is active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// The owning tenant.
    pub tenant_id: String,
    /// The module's name, unique per tenant.
    pub name: String,
    /// Which contract it implements.
    pub world: World,
    /// The version messages run on; `None` until the first activation.
    pub active_version: Option<u32>,
    /// When the module was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// A module version without its component bytes: cheap to list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The module's name.
    pub module: String,
    /// The version number: 1, 2, 3... per module, never reused.
    pub version: u32,
    /// SHA-256 of the component bytes, lowercase hex.
    pub sha256: String,
    /// Size of the component, in bytes.
    pub size_bytes: u64,
    /// What the host enforces on this version.
    pub policy: ModulePolicy,
    /// The codec test vectors uploaded with this version (YAML), if any.
    pub test_vectors_yaml: Option<String>,
    /// The language of the source the backend built this version from; `None` when the
    /// component was uploaded as bytes.
    pub source_language: Option<SourceLanguage>,
    /// When the version was uploaded, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// The language of a version's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceLanguage {
    /// A JavaScript codec, built by `sluice-js`.
    JavaScript,
    /// A Rust codec written against the guest SDK.
    Rust,
}

impl SourceLanguage {
    /// The name stored and shown: `javascript` or `rust`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceLanguage::JavaScript => "javascript",
            SourceLanguage::Rust => "rust",
        }
    }

    fn parse(stored: &str) -> Option<Self> {
        match stored {
            "javascript" => Some(SourceLanguage::JavaScript),
            "rust" => Some(SourceLanguage::Rust),
            _ => None,
        }
    }
}

/// The source a version was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source<'a> {
    /// Its language.
    pub language: SourceLanguage,
    /// The text.
    pub text: &'a str,
}

/// A module version with its component: what a worker loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleVersion {
    /// Everything but the bytes.
    pub info: VersionInfo,
    /// The WebAssembly component.
    pub component: Vec<u8>,
    /// The source it was built from (language in `info.source_language`), if the backend
    /// built it.
    pub source: Option<String>,
}

/// What to upload as a new version.
#[derive(Debug, Clone, Copy)]
pub struct NewVersion<'a> {
    /// The WebAssembly component (not validated here: the runtime does that before upload).
    pub component: &'a [u8],
    /// What the host enforces on it.
    pub policy: &'a ModulePolicy,
    /// Codec test vectors (YAML), if any.
    pub test_vectors_yaml: Option<&'a str>,
    /// The source the component was built from, when the backend built it.
    pub source: Option<Source<'a>>,
}

impl<'a> NewVersion<'a> {
    /// A component under `policy`, with no vectors and no source.
    pub fn new(component: &'a [u8], policy: &'a ModulePolicy) -> Self {
        Self {
            component,
            policy,
            test_vectors_yaml: None,
            source: None,
        }
    }
}

/// The result of [`Store::add_version`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// The version that holds the upload.
    pub version: VersionInfo,
    /// `false` when an existing version already held the same component, policy and test
    /// vectors, and that version was returned instead of a new one.
    pub created: bool,
}

/// One entry of a module's activation history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    /// The version that was activated.
    pub version: u32,
    /// When, in milliseconds since the Unix epoch.
    pub activated_at_ms: u64,
    /// When a rollback undid this activation, if one did.
    pub rolled_back_at_ms: Option<u64>,
}

pub(crate) fn world_str(world: World) -> &'static str {
    match world {
        World::Codec => "codec",
        World::Router => "router",
    }
}

fn world_from_sql(text: &str) -> rusqlite::Result<World> {
    match text {
        "codec" => Ok(World::Codec),
        "router" => Ok(World::Router),
        other => Err(rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            format!("unknown world `{other}`").into(),
        )),
    }
}

const MODULE_COLUMNS: &str = "id, tenant_id, name, world, active_version, created_at_ms";

fn module_from_row(row: &Row<'_>) -> rusqlite::Result<(i64, Module)> {
    let world: String = row.get(3)?;
    Ok((
        row.get(0)?,
        Module {
            tenant_id: row.get(1)?,
            name: row.get(2)?,
            world: world_from_sql(&world)?,
            active_version: row.get(4)?,
            created_at_ms: row.get(5)?,
        },
    ))
}

/// The module `name` of `tenant` with its row id, if it exists.
pub(crate) fn find_module(
    conn: &Connection,
    tenant: &str,
    name: &str,
) -> Result<Option<(i64, Module)>, StoreError> {
    conn.query_row(
        &format!("SELECT {MODULE_COLUMNS} FROM modules WHERE tenant_id = ?1 AND name = ?2"),
        [tenant, name],
        module_from_row,
    )
    .optional()
    .during("reading a module")
}

fn require_module(
    conn: &Connection,
    tenant: &str,
    name: &str,
) -> Result<(i64, Module), StoreError> {
    find_module(conn, tenant, name)?.ok_or_else(|| StoreError::ModuleNotFound {
        tenant: tenant.to_string(),
        module: name.to_string(),
    })
}

const VERSION_COLUMNS: &str =
    "version, sha256, size_bytes, policy_json, test_vectors_yaml, created_at_ms, source_language";

/// A version row as stored: the policy is still JSON text.
struct RawVersion {
    version: u32,
    sha256: String,
    size_bytes: u64,
    policy_json: String,
    test_vectors_yaml: Option<String>,
    created_at_ms: u64,
    source_language: Option<String>,
}

fn raw_version_from_row(row: &Row<'_>) -> rusqlite::Result<RawVersion> {
    Ok(RawVersion {
        version: row.get(0)?,
        sha256: row.get(1)?,
        size_bytes: row.get(2)?,
        policy_json: row.get(3)?,
        test_vectors_yaml: row.get(4)?,
        created_at_ms: row.get(5)?,
        source_language: row.get(6)?,
    })
}

impl RawVersion {
    fn decode(self, module: &str) -> Result<VersionInfo, StoreError> {
        let policy =
            serde_json::from_str(&self.policy_json).map_err(|source| StoreError::Json {
                what: "module policy",
                source,
            })?;
        let source_language = match self.source_language.as_deref() {
            None => None,
            Some(stored) => {
                Some(
                    SourceLanguage::parse(stored).ok_or_else(|| StoreError::Invalid {
                        field: "stored source language",
                        problem: format!("`{stored}` is not javascript or rust"),
                    })?,
                )
            }
        };
        Ok(VersionInfo {
            module: module.to_string(),
            version: self.version,
            sha256: self.sha256,
            size_bytes: self.size_bytes,
            policy,
            test_vectors_yaml: self.test_vectors_yaml,
            source_language,
            created_at_ms: self.created_at_ms,
        })
    }
}

fn read_version(
    conn: &Connection,
    module_id: i64,
    module: &str,
    version: u32,
) -> Result<Option<ModuleVersion>, StoreError> {
    let row = conn
        .query_row(
            &format!(
                "SELECT {VERSION_COLUMNS}, component, source FROM module_versions
                 WHERE module_id = ?1 AND version = ?2"
            ),
            rusqlite::params![module_id, version],
            |row| {
                Ok((
                    raw_version_from_row(row)?,
                    row.get::<_, Vec<u8>>(7)?,
                    row.get::<_, Option<String>>(8)?,
                ))
            },
        )
        .optional()
        .during("reading a module version")?;
    row.map(|(raw, component, source)| {
        Ok(ModuleVersion {
            info: raw.decode(module)?,
            component,
            source,
        })
    })
    .transpose()
}

fn version_exists(conn: &Connection, module_id: i64, version: u32) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT 1 FROM module_versions WHERE module_id = ?1 AND version = ?2",
        rusqlite::params![module_id, version],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
    .during("reading a module version")
}

impl Store {
    /// Creates module `name` for `tenant`, implementing `world`, with no versions yet.
    pub fn create_module(
        &self,
        tenant: &str,
        name: &str,
        world: World,
    ) -> Result<Module, StoreError> {
        check_name("module name", name)?;
        let module = Module {
            tenant_id: tenant.to_string(),
            name: name.to_string(),
            world,
            active_version: None,
            created_at_ms: now_ms(),
        };
        self.write("creating a module", |tx| {
            ensure_tenant(tx, tenant)?;
            tx.execute(
                "INSERT INTO modules (tenant_id, name, world, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![tenant, name, world_str(world), module.created_at_ms],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict {
                        kind: "module",
                        tenant: Some(tenant.to_string()),
                        name: name.to_string(),
                    }
                } else {
                    StoreError::Sqlite {
                        action: "creating a module",
                        source: e,
                    }
                }
            })?;
            Ok(())
        })?;
        Ok(module)
    }

    /// The module `name` of `tenant`, if it exists.
    pub fn get_module(&self, tenant: &str, name: &str) -> Result<Option<Module>, StoreError> {
        self.read(|conn| Ok(find_module(conn, tenant, name)?.map(|(_, m)| m)))
    }

    /// The modules of `tenant`, ordered by name.
    pub fn list_modules(&self, tenant: &str) -> Result<Vec<Module>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {MODULE_COLUMNS} FROM modules WHERE tenant_id = ?1 ORDER BY name"
                ))
                .during("listing modules")?;
            stmt.query_map([tenant], |row| module_from_row(row).map(|(_, m)| m))
                .during("listing modules")?
                .collect::<Result<_, _>>()
                .during("listing modules")
        })
    }

    /// Deletes module `name` of `tenant` with all its versions and history. Refused while a
    /// binding uses it.
    pub fn delete_module(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        self.write("deleting a module", |tx| {
            let (module_id, _) = require_module(tx, tenant, name)?;
            let mut stmt = tx
                .prepare(
                    "SELECT name FROM bindings
                     WHERE codec_module_id = ?1 OR router_module_id = ?1 ORDER BY name",
                )
                .during("deleting a module")?;
            let users: Vec<String> = stmt
                .query_map([module_id], |row| row.get(0))
                .during("deleting a module")?
                .collect::<Result<_, _>>()
                .during("deleting a module")?;
            if !users.is_empty() {
                return Err(StoreError::ModuleInUse {
                    module: name.to_string(),
                    bindings: users
                        .iter()
                        .map(|b| format!("`{b}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            tx.execute("DELETE FROM modules WHERE id = ?1", [module_id])
                .during("deleting a module")?;
            Ok(())
        })
    }

    /// Stores `new` as the next version of module `module` of `tenant`.
    ///
    /// Versions are immutable. Uploading a component, policy and test vectors identical to an
    /// existing version returns that version with `created: false` (so a retried upload does
    /// not create versions); the same bytes with a different policy or test vectors make a new
    /// version with the same `sha256`. The new version is not activated.
    pub fn add_version(
        &self,
        tenant: &str,
        module: &str,
        new: NewVersion<'_>,
    ) -> Result<Upload, StoreError> {
        let sha256 = hex::encode(Sha256::digest(new.component));
        let policy_json = serde_json::to_string(new.policy).map_err(|source| StoreError::Json {
            what: "module policy",
            source,
        })?;
        let source_language = new.source.map(|s| s.language.as_str());
        let source_text = new.source.map(|s| s.text);
        self.write("adding a module version", |tx| {
            let (module_id, _) = require_module(tx, tenant, module)?;
            let existing = tx
                .query_row(
                    &format!(
                        "SELECT {VERSION_COLUMNS} FROM module_versions
                         WHERE module_id = ?1 AND sha256 = ?2 AND policy_json = ?3
                           AND test_vectors_yaml IS ?4 AND source_language IS ?5 AND source IS ?6
                         ORDER BY version DESC LIMIT 1"
                    ),
                    rusqlite::params![
                        module_id,
                        sha256,
                        policy_json,
                        new.test_vectors_yaml,
                        source_language,
                        source_text
                    ],
                    raw_version_from_row,
                )
                .optional()
                .during("adding a module version")?;
            if let Some(raw) = existing {
                return Ok(Upload {
                    version: raw.decode(module)?,
                    created: false,
                });
            }
            let version: u32 = tx
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM module_versions
                     WHERE module_id = ?1",
                    [module_id],
                    |row| row.get(0),
                )
                .during("adding a module version")?;
            let created_at_ms = now_ms();
            tx.execute(
                "INSERT INTO module_versions (module_id, version, sha256, size_bytes, component,
                     policy_json, test_vectors_yaml, created_at_ms, source_language, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                rusqlite::params![
                    module_id,
                    version,
                    sha256,
                    new.component.len() as u64,
                    new.component,
                    policy_json,
                    new.test_vectors_yaml,
                    created_at_ms,
                    source_language,
                    source_text,
                ],
            )
            .during("adding a module version")?;
            Ok(Upload {
                version: VersionInfo {
                    module: module.to_string(),
                    version,
                    sha256: sha256.clone(),
                    size_bytes: new.component.len() as u64,
                    policy: new.policy.clone(),
                    test_vectors_yaml: new.test_vectors_yaml.map(str::to_string),
                    source_language: new.source.map(|s| s.language),
                    created_at_ms,
                },
                created: true,
            })
        })
    }

    /// Version `version` of module `module` of `tenant`, with its component.
    pub fn get_version(
        &self,
        tenant: &str,
        module: &str,
        version: u32,
    ) -> Result<Option<ModuleVersion>, StoreError> {
        self.read(|conn| match find_module(conn, tenant, module)? {
            Some((module_id, _)) => read_version(conn, module_id, module, version),
            None => Ok(None),
        })
    }

    /// The active version of module `module` of `tenant`, with its component; `None` when the
    /// module does not exist or has never been activated.
    pub fn get_active_version(
        &self,
        tenant: &str,
        module: &str,
    ) -> Result<Option<ModuleVersion>, StoreError> {
        self.read(|conn| match find_module(conn, tenant, module)? {
            Some((
                module_id,
                Module {
                    active_version: Some(version),
                    ..
                },
            )) => read_version(conn, module_id, module, version),
            _ => Ok(None),
        })
    }

    /// Every version of module `module` of `tenant`, oldest first, without component bytes.
    pub fn list_versions(
        &self,
        tenant: &str,
        module: &str,
    ) -> Result<Vec<VersionInfo>, StoreError> {
        self.read(|conn| {
            let (module_id, _) = require_module(conn, tenant, module)?;
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {VERSION_COLUMNS} FROM module_versions
                     WHERE module_id = ?1 ORDER BY version"
                ))
                .during("listing module versions")?;
            let raws: Vec<RawVersion> = stmt
                .query_map([module_id], raw_version_from_row)
                .during("listing module versions")?
                .collect::<Result<_, _>>()
                .during("listing module versions")?;
            raws.into_iter().map(|raw| raw.decode(module)).collect()
        })
    }

    /// Makes `new` the live version of module `module` of `tenant`: creates the module (of
    /// `world`) unless it exists, adds the version (or finds the identical one) and activates
    /// it. Three steps, not one transaction: a failure can leave the module created. A module
    /// of another world is an error.
    pub fn deploy(
        &self,
        tenant: &str,
        module: &str,
        world: World,
        new: NewVersion<'_>,
    ) -> Result<Upload, StoreError> {
        match self.create_module(tenant, module, world) {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                let existing = self.get_module(tenant, module)?;
                if let Some(found) = existing.filter(|m| m.world != world) {
                    return Err(StoreError::Invalid {
                        field: "module world",
                        problem: format!(
                            "module `{module}` is a {}, not a {}",
                            world_str(found.world),
                            world_str(world)
                        ),
                    });
                }
            }
            Err(e) => return Err(e),
        }
        let upload = self.add_version(tenant, module, new)?;
        self.activate(tenant, module, upload.version.version)?;
        Ok(upload)
    }

    /// Makes `version` the active version of module `module` of `tenant` and records it in
    /// the activation history. Activating the version already active changes nothing.
    pub fn activate(&self, tenant: &str, module: &str, version: u32) -> Result<Module, StoreError> {
        self.write("activating a module version", |tx| {
            let (module_id, mut found) = require_module(tx, tenant, module)?;
            if !version_exists(tx, module_id, version)? {
                return Err(StoreError::VersionNotFound {
                    tenant: tenant.to_string(),
                    module: module.to_string(),
                    version,
                });
            }
            if found.active_version == Some(version) {
                return Ok(found);
            }
            tx.execute(
                "INSERT INTO module_activations (module_id, version, activated_at_ms)
                 VALUES (?1, ?2, ?3)",
                rusqlite::params![module_id, version, now_ms()],
            )
            .during("activating a module version")?;
            tx.execute(
                "UPDATE modules SET active_version = ?1 WHERE id = ?2",
                rusqlite::params![version, module_id],
            )
            .during("activating a module version")?;
            found.active_version = Some(version);
            Ok(found)
        })
    }

    /// Undoes the latest activation of module `module` of `tenant`: the version active before
    /// it becomes active again. Repeated rollbacks walk further back; with no earlier
    /// activation left, fails with [`StoreError::NoPreviousVersion`].
    pub fn rollback(&self, tenant: &str, module: &str) -> Result<Module, StoreError> {
        self.write("rolling back a module", |tx| {
            let (module_id, mut found) = require_module(tx, tenant, module)?;
            let mut stmt = tx
                .prepare(
                    "SELECT id, version FROM module_activations
                     WHERE module_id = ?1 AND rolled_back_at_ms IS NULL
                     ORDER BY id DESC LIMIT 2",
                )
                .during("rolling back a module")?;
            let live: Vec<(i64, u32)> = stmt
                .query_map([module_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .during("rolling back a module")?
                .collect::<Result<_, _>>()
                .during("rolling back a module")?;
            let [(latest, _), (_, previous)] = live[..] else {
                return Err(StoreError::NoPreviousVersion {
                    tenant: tenant.to_string(),
                    module: module.to_string(),
                });
            };
            tx.execute(
                "UPDATE module_activations SET rolled_back_at_ms = ?1 WHERE id = ?2",
                rusqlite::params![now_ms(), latest],
            )
            .during("rolling back a module")?;
            tx.execute(
                "UPDATE modules SET active_version = ?1 WHERE id = ?2",
                rusqlite::params![previous, module_id],
            )
            .during("rolling back a module")?;
            found.active_version = Some(previous);
            Ok(found)
        })
    }

    /// The activation history of module `module` of `tenant`, oldest first.
    pub fn list_activations(
        &self,
        tenant: &str,
        module: &str,
    ) -> Result<Vec<Activation>, StoreError> {
        self.read(|conn| {
            let (module_id, _) = require_module(conn, tenant, module)?;
            let mut stmt = conn
                .prepare(
                    "SELECT version, activated_at_ms, rolled_back_at_ms FROM module_activations
                     WHERE module_id = ?1 ORDER BY id",
                )
                .during("listing module activations")?;
            stmt.query_map([module_id], |row| {
                Ok(Activation {
                    version: row.get(0)?,
                    activated_at_ms: row.get(1)?,
                    rolled_back_at_ms: row.get(2)?,
                })
            })
            .during("listing module activations")?
            .collect::<Result<_, _>>()
            .during("listing module activations")
        })
    }
}
