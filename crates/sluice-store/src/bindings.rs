use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use sluice_types::World;

use crate::Store;
use crate::db::{check_name, ensure_tenant, now_ms};
use crate::error::{SqlContext, StoreError, is_unique_violation, to_json};
use crate::modules::{find_module, world_str};

/// What a binding is made of: the input of [`Store::create_binding`] and
/// [`Store::update_binding`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingSpec {
    /// The binding's name, unique per tenant.
    pub name: String,
    /// The codec module (a module of the same tenant whose world is codec).
    pub codec: String,
    /// The router module, if any (a module of the same tenant whose world is router).
    #[serde(default)]
    pub router: Option<String>,
    /// Key/values the guests read through `sluice:codec/config`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Where messages come from. Kept as given: the connectors define and check its shape.
    #[serde(default = "empty_list")]
    pub sources: serde_json::Value,
    /// Where documents go. Kept as given: the connectors define and check its shape.
    #[serde(default = "empty_list")]
    pub sinks: serde_json::Value,
    /// Limit policies (throttle, quarantine, restart). Kept as given: the pipeline defines
    /// and checks its shape.
    #[serde(default = "empty_object")]
    pub policy: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

fn empty_list() -> serde_json::Value {
    serde_json::Value::Array(Vec::new())
}

/// A stored binding: a spec plus its tenant and timestamps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    /// The owning tenant.
    pub tenant_id: String,
    /// The binding's name.
    pub name: String,
    /// The codec module's name.
    pub codec: String,
    /// The router module's name, if any.
    pub router: Option<String>,
    /// Key/values the guests read through `sluice:codec/config`.
    pub config: BTreeMap<String, String>,
    /// Where messages come from.
    pub sources: serde_json::Value,
    /// Where documents go.
    pub sinks: serde_json::Value,
    /// Limit policies.
    pub policy: serde_json::Value,
    /// Whether the binding is paused (its messages wait, unacknowledged).
    pub paused: bool,
    /// When the binding was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When the binding was last changed, in milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
}

const BINDING_SELECT: &str = "SELECT b.tenant_id, b.name, c.name, r.name, b.config_json,
        b.sinks_json, b.created_at_ms, b.updated_at_ms, b.sources_json, b.policy_json, b.paused
     FROM bindings b
     JOIN modules c ON c.id = b.codec_module_id
     LEFT JOIN modules r ON r.id = b.router_module_id";

/// A binding row as stored: config and sinks still JSON text.
struct RawBinding {
    tenant_id: String,
    name: String,
    codec: String,
    router: Option<String>,
    config_json: String,
    sinks_json: String,
    sources_json: String,
    policy_json: String,
    paused: bool,
    created_at_ms: u64,
    updated_at_ms: u64,
}

fn raw_binding_from_row(row: &Row<'_>) -> rusqlite::Result<RawBinding> {
    Ok(RawBinding {
        tenant_id: row.get(0)?,
        name: row.get(1)?,
        codec: row.get(2)?,
        router: row.get(3)?,
        config_json: row.get(4)?,
        sinks_json: row.get(5)?,
        created_at_ms: row.get(6)?,
        updated_at_ms: row.get(7)?,
        sources_json: row.get(8)?,
        policy_json: row.get(9)?,
        paused: row.get(10)?,
    })
}

impl RawBinding {
    fn decode(self) -> Result<Binding, StoreError> {
        Ok(Binding {
            config: serde_json::from_str(&self.config_json).map_err(|source| StoreError::Json {
                what: "binding config",
                source,
            })?,
            sources: serde_json::from_str(&self.sources_json).map_err(|source| {
                StoreError::Json {
                    what: "binding sources",
                    source,
                }
            })?,
            policy: serde_json::from_str(&self.policy_json).map_err(|source| StoreError::Json {
                what: "binding policy",
                source,
            })?,
            paused: self.paused,
            sinks: serde_json::from_str(&self.sinks_json).map_err(|source| StoreError::Json {
                what: "binding sinks",
                source,
            })?,
            tenant_id: self.tenant_id,
            name: self.name,
            codec: self.codec,
            router: self.router,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

fn find_binding(
    conn: &Connection,
    tenant: &str,
    name: &str,
) -> Result<Option<Binding>, StoreError> {
    conn.query_row(
        &format!("{BINDING_SELECT} WHERE b.tenant_id = ?1 AND b.name = ?2"),
        [tenant, name],
        raw_binding_from_row,
    )
    .optional()
    .during("reading a binding")?
    .map(RawBinding::decode)
    .transpose()
}

/// The row id of module `name` of `tenant`, checked to implement `world`.
fn module_id_for(
    conn: &Connection,
    tenant: &str,
    name: &str,
    world: World,
) -> Result<i64, StoreError> {
    let (id, module) =
        find_module(conn, tenant, name)?.ok_or_else(|| StoreError::ModuleNotFound {
            tenant: tenant.to_string(),
            module: name.to_string(),
        })?;
    if module.world != world {
        return Err(StoreError::WrongWorld {
            module: name.to_string(),
            expected: world_str(world),
            found: world_str(module.world),
        });
    }
    Ok(id)
}

/// The spec's modules as row ids and its config and sinks as JSON, all checked.
struct ResolvedSpec {
    codec_id: i64,
    router_id: Option<i64>,
    config_json: String,
    sinks_json: String,
    sources_json: String,
    policy_json: String,
}

fn resolve(
    conn: &Connection,
    tenant: &str,
    spec: &BindingSpec,
) -> Result<ResolvedSpec, StoreError> {
    check_name("binding name", &spec.name)?;
    ensure_tenant(conn, tenant)?;
    let codec_id = module_id_for(conn, tenant, &spec.codec, World::Codec)?;
    let router_id = spec
        .router
        .as_deref()
        .map(|router| module_id_for(conn, tenant, router, World::Router))
        .transpose()?;
    Ok(ResolvedSpec {
        codec_id,
        router_id,
        config_json: to_json("binding config", &spec.config)?,
        sinks_json: to_json("binding sinks", &spec.sinks)?,
        sources_json: to_json("binding sources", &spec.sources)?,
        policy_json: to_json("binding policy", &spec.policy)?,
    })
}

impl Store {
    /// Creates a binding for `tenant`. Its codec (and router) must be modules of the same
    /// tenant with the right world.
    pub fn create_binding(&self, tenant: &str, spec: &BindingSpec) -> Result<Binding, StoreError> {
        self.write("creating a binding", |tx| {
            let resolved = resolve(tx, tenant, spec)?;
            let now = now_ms();
            tx.execute(
                "INSERT INTO bindings (tenant_id, name, codec_module_id, router_module_id,
                     config_json, sinks_json, created_at_ms, updated_at_ms, sources_json,
                     policy_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)",
                rusqlite::params![
                    tenant,
                    spec.name,
                    resolved.codec_id,
                    resolved.router_id,
                    resolved.config_json,
                    resolved.sinks_json,
                    now,
                    resolved.sources_json,
                    resolved.policy_json,
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict {
                        kind: "binding",
                        tenant: Some(tenant.to_string()),
                        name: spec.name.clone(),
                    }
                } else {
                    StoreError::Sqlite {
                        action: "creating a binding",
                        source: e,
                    }
                }
            })?;
            find_binding(tx, tenant, &spec.name)?.ok_or_else(|| StoreError::BindingNotFound {
                tenant: tenant.to_string(),
                binding: spec.name.clone(),
            })
        })
    }

    /// Pauses (`true`) or resumes a binding; returns the binding as it now is. The flag
    /// survives restarts.
    pub fn set_binding_paused(
        &self,
        tenant: &str,
        name: &str,
        paused: bool,
    ) -> Result<Binding, StoreError> {
        self.write("pausing or resuming a binding", |tx| {
            let changed = tx
                .execute(
                    "UPDATE bindings SET paused = ?1 WHERE tenant_id = ?2 AND name = ?3",
                    rusqlite::params![paused, tenant, name],
                )
                .during("pausing or resuming a binding")?;
            let not_found = || StoreError::BindingNotFound {
                tenant: tenant.to_string(),
                binding: name.to_string(),
            };
            if changed == 0 {
                return Err(not_found());
            }
            find_binding(tx, tenant, name)?.ok_or_else(not_found)
        })
    }

    /// The binding `name` of `tenant`, if it exists.
    pub fn get_binding(&self, tenant: &str, name: &str) -> Result<Option<Binding>, StoreError> {
        self.read(|conn| find_binding(conn, tenant, name))
    }

    /// The bindings of `tenant`, ordered by name.
    pub fn list_bindings(&self, tenant: &str) -> Result<Vec<Binding>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "{BINDING_SELECT} WHERE b.tenant_id = ?1 ORDER BY b.name"
                ))
                .during("listing bindings")?;
            let raws: Vec<RawBinding> = stmt
                .query_map([tenant], raw_binding_from_row)
                .during("listing bindings")?
                .collect::<Result<_, _>>()
                .during("listing bindings")?;
            raws.into_iter().map(RawBinding::decode).collect()
        })
    }

    /// Replaces the modules, config and sinks of the existing binding `spec.name` of
    /// `tenant`.
    pub fn update_binding(&self, tenant: &str, spec: &BindingSpec) -> Result<Binding, StoreError> {
        self.write("updating a binding", |tx| {
            let resolved = resolve(tx, tenant, spec)?;
            let changed = tx
                .execute(
                    "UPDATE bindings SET codec_module_id = ?1, router_module_id = ?2,
                         config_json = ?3, sinks_json = ?4, updated_at_ms = ?5,
                         sources_json = ?8, policy_json = ?9
                     WHERE tenant_id = ?6 AND name = ?7",
                    rusqlite::params![
                        resolved.codec_id,
                        resolved.router_id,
                        resolved.config_json,
                        resolved.sinks_json,
                        now_ms(),
                        tenant,
                        spec.name,
                        resolved.sources_json,
                        resolved.policy_json,
                    ],
                )
                .during("updating a binding")?;
            let not_found = || StoreError::BindingNotFound {
                tenant: tenant.to_string(),
                binding: spec.name.clone(),
            };
            if changed == 0 {
                return Err(not_found());
            }
            find_binding(tx, tenant, &spec.name)?.ok_or_else(not_found)
        })
    }

    /// Deletes the binding `name` of `tenant`. Its dead letters and device state are kept
    /// (see [`Store::dlq_purge`] and [`Store::state_purge`]).
    pub fn delete_binding(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        self.write("deleting a binding", |tx| {
            let changed = tx
                .execute(
                    "DELETE FROM bindings WHERE tenant_id = ?1 AND name = ?2",
                    [tenant, name],
                )
                .during("deleting a binding")?;
            if changed == 0 {
                return Err(StoreError::BindingNotFound {
                    tenant: tenant.to_string(),
                    binding: name.to_string(),
                });
            }
            Ok(())
        })
    }
}
