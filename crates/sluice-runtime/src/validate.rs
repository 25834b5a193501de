//! Load-time checks: is it a component, which world does it implement, and is every import
//! one the host may provide under the module's policy.

use serde::{Deserialize, Serialize};
use sluice_types::{ClockMode, ModulePolicy, ValidationError, World};

/// What a component is, as seen by the host before it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentInfo {
    /// The world it implements.
    pub world: World,
    /// Its imports, by full name (`sluice:codec/log@0.1.0`, `wasi:io/streams@0.2.6`...).
    pub imports: Vec<String>,
    /// Its exports, by name.
    pub exports: Vec<String>,
    /// Size of the component binary, in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the component binary, hex.
    pub sha256: String,
}

/// Refuses anything that is not a component before it reaches the compiler.
pub(crate) fn check_binary(bytes: &[u8]) -> Result<(), ValidationError> {
    if wasmparser::Parser::is_component(bytes) {
        Ok(())
    } else if wasmparser::Parser::is_core_wasm(bytes) {
        Err(ValidationError::CoreModule)
    } else if bytes.starts_with(b"\0asm") {
        Err(ValidationError::Invalid {
            message: "unsupported WebAssembly binary version or layer".into(),
        })
    } else {
        Err(ValidationError::NotWasm)
    }
}

/// Which world the exports implement.
pub(crate) fn world_of(exports: &[String]) -> Result<World, ValidationError> {
    let has = |name: &str| exports.iter().any(|e| e == name);
    if has("decode-uplink") && has("encode-downlink") {
        Ok(World::Codec)
    } else if has("route") {
        Ok(World::Router)
    } else {
        Err(ValidationError::UnknownWorld {
            exports: exports.join(", "),
        })
    }
}

/// The interface part of an import name: `wasi:io/streams@0.2.6` → (`wasi:io`, `streams`).
fn split_import(name: &str) -> Option<(&str, &str, Option<&str>)> {
    let (package, rest) = name.split_once('/')?;
    let (interface, version) = match rest.split_once('@') {
        Some((i, v)) => (i, Some(v)),
        None => (rest, None),
    };
    let package = package.split_once('@').map_or(package, |(p, _)| p);
    Some((package, interface, version))
}

/// Checks one import against the contract and the module's policy.
pub(crate) fn check_import(name: &str, policy: &ModulePolicy) -> Result<(), ValidationError> {
    let not_allowed = || ValidationError::ImportNotAllowed {
        import: name.to_string(),
    };
    let not_granted = |grant: &str| ValidationError::NotGranted {
        import: name.to_string(),
        grant: grant.to_string(),
    };
    let (package, interface, version) = split_import(name).ok_or_else(not_allowed)?;
    match package {
        "sluice:codec" => {
            if !version.is_some_and(|v| v == "0.1.0" || v.starts_with("0.1.")) {
                return Err(not_allowed());
            }
            match interface {
                "types" | "log" | "config" | "state" | "metrics" => Ok(()),
                "clock" if policy.clock == ClockMode::Denied => Err(not_granted("clock")),
                "clock" => Ok(()),
                _ => Err(not_allowed()),
            }
        }
        _ if !version.is_some_and(|v| v.starts_with("0.2.")) => Err(not_allowed()),
        "wasi:io" => match interface {
            "error" | "poll" | "streams" => Ok(()),
            _ => Err(not_allowed()),
        },
        "wasi:cli" => match interface {
            "environment" | "exit" | "stdin" | "stdout" | "stderr" | "terminal-input"
            | "terminal-output" | "terminal-stdin" | "terminal-stdout" | "terminal-stderr" => {
                Ok(())
            }
            _ => Err(not_allowed()),
        },
        "wasi:clocks" => match interface {
            "wall-clock" | "monotonic-clock" if policy.clock == ClockMode::Denied => {
                Err(not_granted("clock"))
            }
            "wall-clock" | "monotonic-clock" => Ok(()),
            _ => Err(not_allowed()),
        },
        "wasi:random" => match interface {
            "random" | "insecure" | "insecure-seed" => Ok(()),
            _ => Err(not_allowed()),
        },
        "wasi:filesystem" => match interface {
            "types" | "preopens" if policy.grants.filesystem => Ok(()),
            "types" | "preopens" => Err(not_granted("filesystem")),
            _ => Err(not_allowed()),
        },
        // Sockets, HTTP and everything else are never provided.
        _ => Err(not_allowed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_types::Grants;

    fn policy() -> ModulePolicy {
        ModulePolicy::default()
    }

    #[test]
    fn contract_and_harmless_wasi_imports_are_allowed() {
        for name in [
            "sluice:codec/log@0.1.0",
            "sluice:codec/state@0.1.0",
            "wasi:io/streams@0.2.6",
            "wasi:cli/stderr@0.2.0",
            "wasi:clocks/wall-clock@0.2.3",
            "wasi:random/random@0.2.6",
        ] {
            assert_eq!(check_import(name, &policy()), Ok(()), "{name}");
        }
    }

    #[test]
    fn sockets_are_never_allowed() {
        assert_eq!(
            check_import("wasi:sockets/tcp@0.2.6", &policy()),
            Err(ValidationError::ImportNotAllowed {
                import: "wasi:sockets/tcp@0.2.6".into()
            })
        );
    }

    #[test]
    fn filesystem_needs_its_grant() {
        assert_eq!(
            check_import("wasi:filesystem/preopens@0.2.6", &policy()),
            Err(ValidationError::NotGranted {
                import: "wasi:filesystem/preopens@0.2.6".into(),
                grant: "filesystem".into()
            })
        );
        let granted = ModulePolicy {
            grants: Grants { filesystem: true },
            ..policy()
        };
        assert_eq!(
            check_import("wasi:filesystem/preopens@0.2.6", &granted),
            Ok(())
        );
    }

    #[test]
    fn a_denied_clock_refuses_clock_imports() {
        let denied = ModulePolicy {
            clock: ClockMode::Denied,
            ..policy()
        };
        assert!(matches!(
            check_import("sluice:codec/clock@0.1.0", &denied),
            Err(ValidationError::NotGranted { .. })
        ));
        assert!(matches!(
            check_import("wasi:clocks/monotonic-clock@0.2.6", &denied),
            Err(ValidationError::NotGranted { .. })
        ));
    }

    #[test]
    fn unknown_packages_and_future_versions_are_refused() {
        for name in [
            "wasi:http/outgoing-handler@0.2.6",
            "sluice:codec/log@0.2.0",
            "acme:evil/thing",
            "wasi:io/streams@0.3.0",
        ] {
            assert!(
                matches!(
                    check_import(name, &policy()),
                    Err(ValidationError::ImportNotAllowed { .. })
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn world_is_found_from_exports() {
        let codec = vec!["decode-uplink".to_string(), "encode-downlink".to_string()];
        assert_eq!(world_of(&codec), Ok(World::Codec));
        assert_eq!(world_of(&["route".to_string()]), Ok(World::Router));
        assert!(matches!(
            world_of(&["run".to_string()]),
            Err(ValidationError::UnknownWorld { .. })
        ));
    }

    #[test]
    fn binaries_are_classified() {
        assert_eq!(check_binary(b"hello"), Err(ValidationError::NotWasm));
        assert_eq!(
            check_binary(b"\0asm\x01\0\0\0"),
            Err(ValidationError::CoreModule)
        );
    }
}
