//! Real builds: cargo and rustc for wasm32-wasip2 in the sandbox, against the vendored SDK.
//! The builder's directory is shared by the tests (under `target/`), so the SDK's
//! dependencies are compiled once per tenant name and later runs take seconds.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use sluice_builder::{BuilderConfig, RustBuildError, RustBuilder};
use sluice_runtime::{InstanceEnv, Runtime, RuntimeConfig};
use sluice_types::{ModulePolicy, ModuleRef, Uplink, World};

/// The `sluice new codec` template, as a customer starts.
const CODEC: &str = include_str!("../../sluice-cli/templates/codec.lib.rs.tmpl");

fn codec_source() -> String {
    CODEC
        .replace("{{name}}", "climate")
        .replace("{{Type}}", "Climate")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/rust-builds-test")
}

fn config() -> BuilderConfig {
    BuilderConfig::new(
        root(),
        vec![env!("CARGO_BIN_EXE_sluice-builder-sandbox").to_string()],
    )
}

fn builder() -> &'static RustBuilder {
    static BUILDER: OnceLock<RustBuilder> = OnceLock::new();
    BUILDER.get_or_init(|| RustBuilder::new(config()).expect("a toolchain with wasm32-wasip2"))
}

#[test]
fn a_codec_source_builds_into_a_component_that_decodes() {
    let built = builder()
        .build("acme", &codec_source())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(built.component.starts_with(b"\0asm"));
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let module = runtime
        .load(
            ModuleRef::new("climate", "1"),
            &built.component,
            ModulePolicy::default(),
        )
        .expect("loads");
    assert_eq!(module.world(), World::Codec);
    let outcome = module
        .instantiate(InstanceEnv::default())
        .decode(&Uplink::new("d", 1, vec![0x00, 0xEB, 0x2D]));
    let document = serde_json::to_value(outcome.result.expect("decodes")).expect("json");
    assert_eq!(
        document,
        serde_json::json!({ "temperature": 23.5, "humidity": 45 })
    );
}

#[test]
fn a_compile_error_names_file_line_and_column() {
    let source = codec_source().replace(
        "let temperature = f64::from(i16::from_be_bytes([hi, lo])) / 10.0;",
        "let temperature = f64::from(i16::from_be_bytes([hi, lo])) / ten;",
    );
    let line = source
        .lines()
        .position(|l| l.contains("/ ten;"))
        .expect("the line")
        + 1;
    match builder().build("acme", &source) {
        Err(RustBuildError::Compile { diagnostics }) => {
            let first = &diagnostics[0];
            assert_eq!(first.level, "error");
            assert_eq!(first.file.as_deref(), Some("src/lib.rs"));
            assert_eq!(first.line, Some(line as u32), "{first:?}");
            assert!(first.message.contains("`ten`"), "{first:?}");
            assert!(first.rendered.contains("/ ten"), "{first:?}");
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
}

#[test]
fn a_build_cannot_read_files_outside_its_sandbox() {
    // The service's data and other tenants' directories are outside; so is the user's home.
    let secret_dir = root().join("tenants/globex");
    std::fs::create_dir_all(&secret_dir).expect("dir");
    std::fs::write(secret_dir.join("secret.txt"), "globex secret").expect("secret");
    for path in [
        secret_dir.join("secret.txt"),
        PathBuf::from("/etc/passwd"),
        PathBuf::from("/proc/self/environ"),
    ] {
        let source = format!(
            "{}\npub const STOLEN: &str = include_str!({:?});\n",
            codec_source(),
            path.display().to_string()
        );
        match builder().build("acme", &source) {
            Err(RustBuildError::Compile { diagnostics }) => {
                let text = format!("{diagnostics:?}");
                assert!(
                    text.contains("couldn't read") || text.contains("Permission denied"),
                    "{}: {text}",
                    path.display()
                );
            }
            other => panic!("{}: expected a refused read, got {other:?}", path.display()),
        }
    }
}

#[test]
fn a_build_over_its_time_limit_is_stopped() {
    let mut config = config();
    config.timeout = Duration::from_millis(200);
    let builder = RustBuilder::new(config).expect("builder");
    match builder.build("slowpoke", &codec_source()) {
        Err(RustBuildError::Timeout { limit }) => assert_eq!(limit, Duration::from_millis(200)),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn bad_requests_are_refused_before_building() {
    let huge = "// x\n".repeat(60_000);
    assert!(matches!(
        builder().build("acme", &huge),
        Err(RustBuildError::SourceTooLarge { .. })
    ));
    for tenant in ["", "../etc", "template", "a/b"] {
        assert!(
            matches!(
                builder().build(tenant, ""),
                Err(RustBuildError::Failed { .. })
            ),
            "{tenant:?}"
        );
    }
}
