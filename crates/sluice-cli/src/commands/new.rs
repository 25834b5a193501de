//! `sluice new`: a project from a template that builds and tests green out of the box.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use sluice_types::Limits;

use crate::manifest::{self, Manifest};
use crate::output::display_path;

/// Examples and notes shown after `sluice new --help`.
pub const AFTER_HELP: &str = "\
Examples:
  sluice new codec my-codec                 ./my-codec: a 3-byte climate frame codec
  sluice new router alerts --dir modules    ./modules/alerts: a threshold router
  sluice new codec foo --sdk-path ~/src/sluice/crates/sluice-sdk

The project holds Cargo.toml, src/lib.rs, vectors.yaml, sluice.toml, README.md and .gitignore.
Then: cd NAME && sluice build && sluice test";

/// The SDK next to this CLI's sources, found at compile time.
const DEFAULT_SDK_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sluice-sdk");

/// Longest accepted project name.
const MAX_NAME_LEN: usize = 64;

/// Names cargo or rustc refuse as a package or library name.
const RESERVED_NAMES: &[&str] = &[
    "alloc",
    "core",
    "proc_macro",
    "std",
    "test",
    "self",
    "super",
    "crate",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "static",
    "struct",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "async",
    "await",
    "dyn",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "macro",
    "override",
    "priv",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "try",
    "gen",
];

/// What to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Decodes uplink frames into documents and encodes downlink documents into frames.
    Codec,
    /// Decides which outputs a decoded message goes to.
    Router,
}

/// Arguments of `sluice new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The kind of module.
    #[arg(value_enum)]
    kind: Kind,
    /// The project and module name: lowercase letters, digits, `-` and `_`, starting with a
    /// letter. Becomes the directory, the crate and the component name.
    name: String,
    /// The directory to create the project in.
    #[arg(long, value_name = "PARENT", default_value = ".")]
    dir: PathBuf,
    /// The guest SDK crate the project depends on (by path). Defaults to the SDK of the
    /// Sluice sources this CLI was built from.
    #[arg(long, env = "SLUICE_SDK_PATH", value_name = "PATH")]
    sdk_path: Option<PathBuf>,
}

/// Runs `sluice new`.
pub fn run(args: NewArgs) -> anyhow::Result<ExitCode> {
    validate_name(&args.name)?;
    let sdk = sdk_path(args.sdk_path.as_deref())?;
    let project = args.dir.join(&args.name);
    if project.exists() {
        bail!(
            "{} already exists; choose another name or remove it first (sluice new never \
             overwrites)",
            project.display()
        );
    }
    let files = render(args.kind, &args.name, &sdk)?;
    std::fs::create_dir_all(project.join("src"))
        .with_context(|| format!("cannot create {}", project.display()))?;
    for (relative, content) in &files {
        let path = project.join(relative);
        std::fs::write(&path, content)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    // The template must always produce a manifest the CLI itself accepts.
    Manifest::load(&project.join(manifest::FILE_NAME))?;

    let kind = match args.kind {
        Kind::Codec => "codec",
        Kind::Router => "router",
    };
    let shown = display_path(&project);
    println!("Created the {kind} `{}` in {}", args.name, shown.display());
    for (relative, _) in &files {
        println!("  {relative}");
    }
    println!("  (sluice-sdk from {})", sdk.display());
    println!();
    println!("Next:");
    println!("  cd {}", shown.display());
    println!("  sluice build    # the component, validated by the runtime");
    println!("  sluice test     # vectors.yaml, on the production runtime");
    Ok(ExitCode::SUCCESS)
}

/// Checks a project name: a valid package and library name cargo accepts.
fn validate_name(name: &str) -> anyhow::Result<()> {
    let rule =
        "use lowercase letters, digits, `-` and `_`, starting with a letter (e.g. `my-codec`)";
    let Some(first) = name.chars().next() else {
        bail!("the name is empty; {rule}");
    };
    if !first.is_ascii_lowercase() {
        bail!("invalid name `{name}`: it must start with a lowercase letter; {rule}");
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        bail!("invalid name `{name}`: {bad:?} is not allowed; {rule}");
    }
    if name.len() > MAX_NAME_LEN {
        bail!("invalid name `{name}`: longer than {MAX_NAME_LEN} characters");
    }
    if RESERVED_NAMES.contains(&name.replace('-', "_").as_str()) {
        bail!("invalid name `{name}`: it is reserved by Rust or cargo; choose another");
    }
    Ok(())
}

/// The SDK directory: the given one, else the one this CLI was built next to. It must exist.
fn sdk_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let (path, origin) = match given {
        Some(path) => (path.to_path_buf(), "--sdk-path / SLUICE_SDK_PATH"),
        None => (
            PathBuf::from(DEFAULT_SDK_PATH),
            "the Sluice sources this CLI was built from",
        ),
    };
    let manifest = path.join("Cargo.toml");
    let is_sdk = std::fs::read_to_string(&manifest)
        .map(|text| text.contains("name = \"sluice-sdk\""))
        .unwrap_or(false);
    if !is_sdk {
        bail!(
            "the guest SDK (crate `sluice-sdk`) is not at {} (from {origin}); point to it with \
             --sdk-path PATH or the SLUICE_SDK_PATH environment variable",
            path.display()
        );
    }
    // Absolute, so the project builds wherever it is moved.
    std::fs::canonicalize(&path).with_context(|| format!("cannot resolve {}", path.display()))
}

/// `my-codec` → `MyCodec`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The project's files, as (path relative to the project, content).
fn render(kind: Kind, name: &str, sdk: &Path) -> anyhow::Result<Vec<(&'static str, String)>> {
    let sdk = sdk
        .to_str()
        .with_context(|| format!("the SDK path {} is not UTF-8", sdk.display()))?;
    let limits = Limits::default();
    let (world, lib, vectors, readme) = match kind {
        Kind::Codec => (
            "codec",
            include_str!("../../templates/codec.lib.rs.tmpl"),
            include_str!("../../templates/codec.vectors.yaml.tmpl"),
            include_str!("../../templates/codec.README.md.tmpl"),
        ),
        Kind::Router => (
            "router",
            include_str!("../../templates/router.lib.rs.tmpl"),
            include_str!("../../templates/router.vectors.yaml.tmpl"),
            include_str!("../../templates/router.README.md.tmpl"),
        ),
    };
    let vars: Vec<(&str, String)> = vec![
        ("name", name.to_string()),
        ("Type", type_name(name)),
        ("world", world.to_string()),
        // A TOML string, quoted and escaped.
        ("sdk_path", toml::Value::String(sdk.to_string()).to_string()),
        ("fuel_per_call", limits.fuel_per_call.to_string()),
        ("deadline_ms", limits.deadline_ms.to_string()),
        ("max_memory_bytes", limits.max_memory_bytes.to_string()),
        ("max_output_bytes", limits.max_output_bytes.to_string()),
        (
            "max_log_lines_per_call",
            limits.max_log_lines_per_call.to_string(),
        ),
        (
            "max_state_bytes_per_device",
            limits.max_state_bytes_per_device.to_string(),
        ),
    ];
    let fill = |template: &str| {
        vars.iter()
            .fold(template.to_string(), |text, (key, value)| {
                text.replace(&format!("{{{{{key}}}}}"), value)
            })
    };
    Ok(vec![
        (
            "Cargo.toml",
            fill(include_str!("../../templates/Cargo.toml.tmpl")),
        ),
        ("src/lib.rs", fill(lib)),
        ("vectors.yaml", fill(vectors)),
        (
            manifest::FILE_NAME,
            fill(include_str!("../../templates/sluice.toml.tmpl")),
        ),
        ("README.md", fill(readme)),
        (
            ".gitignore",
            fill(include_str!("../../templates/gitignore.tmpl")),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_crate_rules() {
        for good in ["foo", "my-codec", "lpp_v2", "a1"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "Foo", "1abc", "-x", "my codec", "a/b", "test", "fn", "std",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("foo"), "Foo");
        assert_eq!(type_name("my-codec_v2"), "MyCodecV2");
    }

    #[test]
    fn every_placeholder_is_filled() {
        let sdk = Path::new("/opt/sluice-sdk");
        for kind in [Kind::Codec, Kind::Router] {
            for (path, content) in render(kind, "my-thing", sdk).expect("renders") {
                assert!(
                    !content.contains("{{"),
                    "{path} has an unfilled placeholder"
                );
            }
        }
    }

    #[test]
    fn the_rendered_manifest_parses_with_the_default_policy() {
        let files = render(Kind::Router, "bar", Path::new("/sdk")).expect("renders");
        let (_, text) = files
            .iter()
            .find(|(p, _)| *p == manifest::FILE_NAME)
            .expect("has a manifest");
        let parsed = Manifest::parse(text, Path::new(manifest::FILE_NAME)).expect("parses");
        assert_eq!(parsed.module.name, "bar");
        assert_eq!(parsed.module.world, sluice_types::World::Router);
        assert_eq!(parsed.policy, sluice_types::ModulePolicy::default());
    }

    #[test]
    fn the_sdk_path_is_quoted_toml() {
        let files = render(Kind::Codec, "foo", Path::new("/a \"b\"/sdk")).expect("renders");
        let cargo = &files[0].1;
        let parsed: toml::Table = toml::from_str(cargo).expect("valid TOML");
        assert_eq!(
            parsed["dependencies"]["sluice-sdk"]["path"].as_str(),
            Some("/a \"b\"/sdk")
        );
    }
}
