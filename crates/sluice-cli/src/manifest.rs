//! `sluice.toml`: the module manifest (name, world, and the policy the host enforces).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sluice_types::{ModulePolicy, World};

/// The manifest's file name, at the root of a module project.
pub const FILE_NAME: &str = "sluice.toml";

/// A module manifest. Unknown keys are errors, so a typo names itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// What the module is.
    pub module: ModuleSection,
    /// What the host enforces on it; every field defaults.
    #[serde(default)]
    pub policy: ModulePolicy,
}

/// The `[module]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleSection {
    /// The module's name: the built component is `target/sluice/<name>.wasm`.
    pub name: String,
    /// The world it implements: `codec` or `router`.
    pub world: World,
}

impl Manifest {
    /// Parses manifest text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> anyhow::Result<Self> {
        toml::from_str(text)
            .with_context(|| format!("{} is not a valid manifest", origin.display()))
    }

    /// Reads the manifest at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Reads `dir/sluice.toml` when it exists.
    pub fn load_in(dir: &Path) -> anyhow::Result<Option<(Self, PathBuf)>> {
        let path = dir.join(FILE_NAME);
        if !path.is_file() {
            return Ok(None);
        }
        Ok(Some((Self::load(&path)?, path)))
    }
}

/// How a world is spelled in a manifest: `codec` or `router`.
pub fn world_name(world: World) -> &'static str {
    match world {
        World::Codec => "codec",
        World::Router => "router",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Manifest> {
        Manifest::parse(text, Path::new("sluice.toml"))
    }

    #[test]
    fn a_minimal_manifest_gets_the_default_policy() {
        let manifest = parse("[module]\nname = \"foo\"\nworld = \"codec\"\n").expect("valid");
        assert_eq!(manifest.module.world, World::Codec);
        assert_eq!(manifest.policy, ModulePolicy::default());
    }

    #[test]
    fn policy_limits_override_the_defaults() {
        let manifest = parse(
            "[module]\nname = \"r\"\nworld = \"router\"\n[policy.limits]\nfuel_per_call = 1000\n",
        )
        .expect("valid");
        assert_eq!(manifest.policy.limits.fuel_per_call, 1000);
        assert_eq!(
            manifest.policy.limits.deadline_ms,
            sluice_types::Limits::default().deadline_ms
        );
    }

    #[test]
    fn a_typo_is_an_error_naming_the_field_and_line() {
        let error = parse(
            "[module]\nname = \"foo\"\nworld = \"codec\"\n[policy.limits]\nfuel_per_cal = 1\n",
        )
        .expect_err("typo");
        let text = format!("{error:#}");
        assert!(text.contains("unknown field `fuel_per_cal`"), "{text}");
        assert!(text.contains("line 5"), "{text}");
    }

    #[test]
    fn an_unknown_world_is_an_error() {
        let error =
            parse("[module]\nname = \"foo\"\nworld = \"sink\"\n").expect_err("unknown world");
        assert!(format!("{error:#}").contains("sink"), "{error:#}");
    }
}
