//! The `sluice` binary, run as a user would: arguments in, stdout/stderr/exit code out.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sluice_test_programs as tp;

/// The Cayenne LPP documentation frame with two temperatures.
const LPP_TWO_TEMPERATURES: &str = "03 67 01 10 05 67 00 FF";

/// `sluice` with a clean environment for its own diagnostics, run in `dir`. Compiled
/// components are cached under the workspace's target dir, never in the user's home.
fn sluice_in(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .env_remove("RUST_LOG")
        .env("SLUICE_CACHE_DIR", test_cache_dir())
        .current_dir(dir);
    command
}

fn test_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/cli-test-cache")
}

/// Runs `sluice ARGS` in a directory without a `sluice.toml`.
fn sluice(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    run(sluice_in(dir.path()).args(args))
}

fn run(command: &mut Command) -> Output {
    command.output().expect("the sluice binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit status\n--- stdout\n{}\n--- stderr\n{}",
        stdout(output),
        stderr(output)
    );
}

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

// --- decode, encode, route ------------------------------------------------------------------

#[test]
fn decode_prints_the_cayenne_document_as_pretty_json() {
    let output = sluice(&[
        "decode",
        "--module",
        tp::CAYENNE_LPP,
        "--hex",
        LPP_TWO_TEMPERATURES,
    ]);
    assert_exit(&output, 0);
    assert_eq!(
        stdout(&output),
        "{\n  \"temperature_3\": 27.2,\n  \"temperature_5\": 25.5\n}\n"
    );
}

#[test]
fn decode_reads_base64_and_prints_compact_json() {
    let output = sluice(&[
        "decode",
        "--module",
        tp::CAYENNE_LPP,
        "--base64",
        "A2cBEAVnAP8=",
        "--compact",
    ]);
    assert_exit(&output, 0);
    assert_eq!(
        stdout(&output),
        "{\"temperature_3\":27.2,\"temperature_5\":25.5}\n"
    );
}

fn decode_stdin(input: &[u8]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = sluice_in(dir.path())
        .args(["decode", "--module", tp::CAYENNE_LPP, "--compact"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("writes stdin");
    child.wait_with_output().expect("finishes")
}

#[test]
fn decode_reads_hex_text_from_stdin() {
    let output = decode_stdin(b"01 67 FF D7\n");
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "{\"temperature_1\":-4.1}\n");
}

#[test]
fn decode_reads_raw_bytes_from_stdin() {
    let output = decode_stdin(&[0x01, 0x67, 0xFF, 0xD7]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "{\"temperature_1\":-4.1}\n");
}

#[test]
fn decode_reports_a_truncated_frame_as_a_typed_error_naming_the_module() {
    let output = sluice(&["decode", "--module", tp::CAYENNE_LPP, "--hex", "03 67 01"]);
    assert_exit(&output, 1);
    assert_eq!(stdout(&output), "");
    let err = stderr(&output);
    assert!(err.starts_with("error: cayenne_lpp@"), "{err}");
    assert!(err.contains("invalid-input"), "{err}");
    assert!(err.contains("truncated temperature on channel 3"), "{err}");
}

#[test]
fn decode_refuses_garbage_bytes_as_not_wasm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, tp::garbage_bytes()).expect("writes");
    let output = sluice(&["decode", "--module", path_str(&garbage), "--hex", "00"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("not a WebAssembly binary"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn decode_refuses_a_core_module_and_names_the_target() {
    let output = sluice(&["decode", "--module", tp::TP_CORE_MODULE, "--hex", "00"]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("core WebAssembly module"), "{err}");
    assert!(err.contains("wasm32-wasip2"), "{err}");
}

#[test]
fn decode_stops_an_infinite_loop_when_fuel_runs_out() {
    let output = sluice(&["decode", "--module", tp::TP_INFINITE_LOOP, "--hex", "00"]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("fuel exhausted"), "{err}");
    assert!(err.contains("tp_infinite_loop@"), "{err}");
}

#[test]
fn decode_shows_a_guest_panic_with_its_log_and_backtrace() {
    let output = sluice(&["decode", "--module", tp::TP_PANIC, "--hex", "00"]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains("[tp_panic] ERROR codec panicked on purpose"),
        "{err}"
    );
    assert!(err.contains("error: tp_panic@"), "{err}");
    assert!(err.contains("trap (unreachable)"), "{err}");
    assert!(err.contains("guest backtrace:"), "{err}");
}

#[test]
fn decode_applies_the_policy_of_a_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("sluice.toml");
    std::fs::write(
        &manifest,
        "[module]\nname = \"lpp\"\nworld = \"codec\"\n[policy.limits]\nfuel_per_call = 100\n",
    )
    .expect("writes");
    let output = sluice(&[
        "decode",
        "--module",
        tp::CAYENNE_LPP,
        "--manifest",
        path_str(&manifest),
        "--hex",
        LPP_TWO_TEMPERATURES,
    ]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("fuel exhausted (limit 100 units per call)"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn decode_needs_a_single_input() {
    let output = sluice(&[
        "decode",
        "--module",
        tp::CAYENNE_LPP,
        "--hex",
        "00",
        "--base64",
        "AA==",
    ]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("cannot be used with"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn encode_prints_the_port_and_the_frame() {
    let output = sluice(&[
        "encode",
        "--module",
        tp::CAYENNE_LPP,
        "--document",
        r#"{"temperature_1": -4.1}"#,
        "--port",
        "10",
    ]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "port 10\nhex  0167ffd7\n");
}

#[test]
fn encode_refuses_a_document_that_is_not_a_map() {
    let output = sluice(&[
        "encode",
        "--module",
        tp::CAYENNE_LPP,
        "--document",
        "[1, 2]",
    ]);
    assert_exit(&output, 1);
    assert!(stderr(&output).contains("a map"), "{}", stderr(&output));
}

#[test]
fn route_prints_the_decisions_as_json() {
    let output = sluice(&[
        "route",
        "--module",
        tp::THRESHOLD_ROUTER,
        "--document",
        r#"{"temperature": 31.0}"#,
        "--config",
        "temperature_max=25",
        "--metadata",
        "site=lab",
        "--device",
        "boiler-7",
        "--compact",
    ]);
    assert_exit(&output, 0);
    let decisions: serde_json::Value =
        serde_json::from_str(&stdout(&output)).expect("decisions are JSON");
    assert_eq!(
        decisions,
        serde_json::json!([
            {"output": "storage"},
            {"output": "alerts", "document": {"device": "boiler-7", "alert": "temperature_high", "value": 31.0}},
            {"output": "analytics", "drop_reason": "lab devices are excluded"},
        ])
    );
}

#[test]
fn route_on_a_codec_names_the_world() {
    let output = sluice(&["route", "--module", tp::CAYENNE_LPP, "--document", "{}"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("has no `route`"),
        "{}",
        stderr(&output)
    );
}

// --- inspect --------------------------------------------------------------------------------

#[test]
fn inspect_shows_the_world_exports_and_imports() {
    let output = sluice(&["inspect", tp::CAYENNE_LPP]);
    assert_exit(&output, 0);
    let out = stdout(&output);
    assert!(out.contains("sluice:codec/codec@0.1.0"), "{out}");
    assert!(out.contains("decode-uplink, encode-downlink"), "{out}");
    assert!(out.contains("loads    yes"), "{out}");
}

#[test]
fn inspect_json_parses() {
    let output = sluice(&["inspect", tp::CAYENNE_LPP, "--json"]);
    assert_exit(&output, 0);
    let info: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(info["wit_world"], "sluice:codec/codec@0.1.0");
    assert_eq!(info["world"], "codec");
    assert_eq!(info["sha256"].as_str().map(str::len), Some(64));
    assert!(info["imports"].as_array().is_some_and(|i| !i.is_empty()));
    assert_eq!(info["policy_error"], serde_json::Value::Null);
}

#[test]
fn inspect_describes_a_component_the_policy_would_reject() {
    let output = sluice(&["inspect", tp::TP_SOCKETS]);
    assert_exit(&output, 0);
    let out = stdout(&output);
    assert!(out.contains("wasi:sockets/tcp"), "{out}");
    assert!(out.contains("loads    no"), "{out}");
    assert!(out.contains("never provided"), "{out}");
}

#[test]
fn inspect_rejects_a_binary_that_is_not_a_component() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, tp::garbage_bytes()).expect("writes");
    let output = sluice(&["inspect", path_str(&garbage)]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("not a WebAssembly binary"),
        "{}",
        stderr(&output)
    );
}

// --- test -----------------------------------------------------------------------------------

#[test]
fn test_passes_every_cayenne_vector() {
    let vectors = repo_file("examples/cayenne-lpp/vectors.yaml");
    let output = sluice(&[
        "test",
        "--module",
        tp::CAYENNE_LPP,
        "--vectors",
        path_str(&vectors),
    ]);
    assert_exit(&output, 0);
    let out = stdout(&output);
    assert!(!out.contains("FAIL"), "{out}");
    assert!(
        out.lines().any(
            |l| l.starts_with("ok   lpp documentation example, two temperatures")
                && l.contains("(fuel ")
        ),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.ends_with(" passed, 0 failed") && !l.starts_with("0 ")),
        "{out}"
    );
}

#[test]
fn test_shows_a_diff_under_a_failing_vector_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vectors = dir.path().join("vectors.yaml");
    std::fs::write(
        &vectors,
        "vectors:\n\
         \x20 - name: right\n\
         \x20   payload_hex: \"01 67 FF D7\"\n\
         \x20   expect: { temperature_1: -4.1 }\n\
         \x20 - name: wrong on purpose\n\
         \x20   payload_hex: \"03 67 01 10 05 67 00 FF\"\n\
         \x20   expect: { temperature_3: 27.3, temperature_5: 25.5 }\n",
    )
    .expect("writes");
    let output = run(sluice_in(dir.path()).args(["test", "--module", tp::CAYENNE_LPP]));
    assert_exit(&output, 1);
    let out = stdout(&output);
    assert!(out.contains("ok   right"), "{out}");
    assert!(out.contains("FAIL wrong on purpose"), "{out}");
    let diff: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(diff.contains(&"-  \"temperature_3\": 27.3,"), "{out}");
    assert!(diff.contains(&"+  \"temperature_3\": 27.2,"), "{out}");
    assert!(out.contains("1 passed, 1 failed"), "{out}");
}

#[test]
fn test_names_an_unknown_vector_field_and_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vectors = dir.path().join("vectors.yaml");
    std::fs::write(
        &vectors,
        "vectors:\n  - name: typo\n    payload_hex: \"00\"\n    expected: {}\n",
    )
    .expect("writes");
    let output = run(sluice_in(dir.path()).args(["test", "--module", tp::CAYENNE_LPP]));
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("vectors.yaml"), "{err}");
    assert!(err.contains("unknown field `expected`"), "{err}");
    assert!(err.contains("line 4"), "{err}");
}

// --- new, build, test: the whole loop -------------------------------------------------------

/// Where the end-to-end guests build: shared between runs so dependencies compile once.
fn e2e_target_dir() -> PathBuf {
    repo_file("target").join("cli-e2e")
}

/// `sluice ARGS` in `dir`, building guests into the shared e2e target dir.
fn sluice_e2e(dir: &Path, args: &[&str]) -> Output {
    run(sluice_in(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", e2e_target_dir()))
}

/// Creates a project with `sluice new KIND NAME`, then builds and tests it.
fn new_build_test(kind: &str, name: &str) -> (tempfile::TempDir, PathBuf) {
    let parent = tempfile::tempdir().expect("tempdir");
    let output = run(sluice_in(parent.path()).args(["new", kind, name]));
    assert_exit(&output, 0);
    let project = parent.path().join(name);
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "vectors.yaml",
        "sluice.toml",
        "README.md",
        ".gitignore",
    ] {
        assert!(project.join(file).is_file(), "{file} is missing");
    }

    // Pin the guest dependencies to the versions the examples are tested with: the build
    // then needs no registry index and picks no new release by surprise.
    std::fs::copy(repo_file("examples/Cargo.lock"), project.join("Cargo.lock"))
        .expect("seeds Cargo.lock");

    let built = sluice_e2e(&project, &["build"]);
    assert_exit(&built, 0);
    let out = stdout(&built);
    assert!(out.contains(&format!("target/sluice/{name}.wasm")), "{out}");
    assert!(out.contains(&format!("sluice:codec/{kind}@0.1.0")), "{out}");
    assert!(project.join(format!("target/sluice/{name}.wasm")).is_file());

    let tested = sluice_e2e(&project, &["test"]);
    assert_exit(&tested, 0);
    let out = stdout(&tested);
    assert!(!out.contains("FAIL"), "{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    let module = project.join(format!("target/sluice/{name}.wasm"));
    (parent, module)
}

#[test]
fn new_codec_builds_and_tests_green() {
    let (_dir, module) = new_build_test("codec", "foo");
    let output = sluice(&[
        "decode",
        "--module",
        path_str(&module),
        "--hex",
        "00 EB 2D",
        "--compact",
    ]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "{\"humidity\":45,\"temperature\":23.5}\n");
}

#[test]
fn new_router_builds_and_tests_green() {
    let (_dir, module) = new_build_test("router", "bar");
    let output = sluice(&[
        "route",
        "--module",
        path_str(&module),
        "--document",
        r#"{"temperature": 12}"#,
        "--config",
        "temperature_max=10",
        "--compact",
    ]);
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("temperature_high"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn new_refuses_an_existing_directory() {
    let parent = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(parent.path().join("taken")).expect("mkdir");
    let output = run(sluice_in(parent.path()).args(["new", "codec", "taken"]));
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("already exists"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read_dir(parent.path().join("taken"))
            .expect("lists")
            .count(),
        0,
        "the existing directory was touched"
    );
}

#[test]
fn new_refuses_a_bad_name() {
    let parent = tempfile::tempdir().expect("tempdir");
    for name in ["My-Codec", "1codec", "my codec", "../escape"] {
        let output = run(sluice_in(parent.path()).args(["new", "codec", name]));
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains("invalid name"),
            "{name}: {}",
            stderr(&output)
        );
    }
    assert_eq!(
        std::fs::read_dir(parent.path()).expect("lists").count(),
        0,
        "nothing may be created"
    );
}

#[test]
fn new_fails_clearly_without_the_sdk() {
    let parent = tempfile::tempdir().expect("tempdir");
    let output = run(sluice_in(parent.path())
        .args(["new", "codec", "foo"])
        .env("SLUICE_SDK_PATH", parent.path().join("no-sdk-here")));
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("sluice-sdk"), "{err}");
    assert!(err.contains("--sdk-path"), "{err}");
    assert!(!parent.path().join("foo").exists());
}

#[test]
fn build_names_a_manifest_typo_before_compiling() {
    let parent = tempfile::tempdir().expect("tempdir");
    assert_exit(
        &run(sluice_in(parent.path()).args(["new", "codec", "typo"])),
        0,
    );
    let project = parent.path().join("typo");
    let manifest = project.join("sluice.toml");
    let text = std::fs::read_to_string(&manifest).expect("reads");
    std::fs::write(
        &manifest,
        format!("{text}\n[policy.limits]\nfuel_per_cal = 5\n"),
    )
    .expect("writes");
    let output = run(sluice_in(&project).arg("build"));
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("sluice.toml"), "{err}");
    assert!(err.contains("unknown field `fuel_per_cal`"), "{err}");
    assert!(!err.contains("Compiling"), "cargo ran: {err}");
}

/// A missing wasm target is named with the command that installs it. A fake `rustup` that
/// lists only the host target stands in for a fresh toolchain.
#[cfg(unix)]
#[test]
fn build_without_the_wasm_target_says_how_to_install_it() {
    use std::os::unix::fs::PermissionsExt as _;

    let parent = tempfile::tempdir().expect("tempdir");
    assert_exit(
        &run(sluice_in(parent.path()).args(["new", "codec", "fresh"])),
        0,
    );
    let bin = parent.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    let rustup = bin.join("rustup");
    std::fs::write(&rustup, "#!/bin/sh\necho x86_64-unknown-linux-gnu\n").expect("writes");
    std::fs::set_permissions(&rustup, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let output = run(sluice_in(&parent.path().join("fresh"))
        .arg("build")
        .env("PATH", path));
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("rustup target add wasm32-wasip2"), "{err}");
}

#[test]
fn build_outside_a_project_says_what_to_do() {
    let output = sluice(&["build"]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("no Cargo.toml"), "{err}");
    assert!(err.contains("sluice new"), "{err}");
}

// --- demo -----------------------------------------------------------------------------------

#[test]
fn demo_reports_throughput_latency_and_the_sandbox_holding() {
    let output = sluice(&["demo", "--frames", "2000", "--show", "1"]);
    assert_exit(&output, 0);
    let out = stdout(&output);
    assert!(out.contains("msgs/s"), "{out}");
    assert!(out.contains("p99"), "{out}");
    assert!(out.contains("2,000 ok, 0 failed"), "{out}");
    assert!(out.contains("invalid-input"), "{out}");
    assert!(
        out.contains("fuel exhausted (limit 1000 units per call)"),
        "{out}"
    );
    assert!(out.contains("03 67 01 10 05 67 00 FF"), "{out}");
}

#[test]
fn help_shows_examples_for_every_command() {
    for command in [
        "new", "build", "test", "decode", "encode", "route", "inspect", "demo", "deploy",
    ] {
        let output = sluice(&[command, "--help"]);
        assert_exit(&output, 0);
        assert!(
            stdout(&output).contains("Examples:"),
            "{command}: {}",
            stdout(&output)
        );
    }
}

#[test]
fn build_turns_a_javascript_codec_into_a_component_that_test_and_decode_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("lpp.js");
    std::fs::copy(repo_file("js/fixtures/cayenne-lpp.js"), &script).expect("copy");
    let output = run(sluice_in(dir.path()).args(["build", "lpp.js"]));
    assert_exit(&output, 0);
    let out = stdout(&output);
    assert!(out.contains("Built lpp.wasm"), "{out}");
    assert!(out.contains("world    sluice:codec/codec@"), "{out}");
    let wasm = std::fs::read(dir.path().join("lpp.wasm")).expect("lpp.wasm written");
    assert!(wasm.starts_with(b"\0asm"), "a wasm binary");

    let output = run(sluice_in(dir.path()).args([
        "decode",
        "--module",
        "lpp.wasm",
        "--hex",
        LPP_TWO_TEMPERATURES,
    ]));
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("27.2"), "{}", stdout(&output));

    // `test` builds a script itself.
    std::fs::write(
        dir.path().join("vectors.yaml"),
        "vectors:\n  - name: two temperatures\n    payload_hex: \"03 67 01 10 05 67 00 FF\"\n    expect: { temperature_3: 27.2, temperature_5: 25.5 }\n",
    )
    .expect("vectors");
    let output = run(sluice_in(dir.path()).args(["test", "--module", "lpp.js"]));
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("ok   two temperatures"),
        "{}",
        stdout(&output)
    );

    let output = run(sluice_in(dir.path()).args(["build", "lpp.js", "-o", "out/x.wasm"]));
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("cannot write out/x.wasm"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn build_reports_a_javascript_syntax_error_at_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        repo_file("js/fixtures/syntax-error.js"),
        dir.path().join("broken.js"),
    )
    .expect("copy");
    let output = run(sluice_in(dir.path()).args(["build", "broken.js"]));
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("error: broken.js:4:"), "{err}");
    assert!(!dir.path().join("broken.wasm").exists(), "nothing written");

    let output = run(sluice_in(dir.path()).args(["build", "notes.txt"]));
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("is not a JavaScript file"),
        "{}",
        stderr(&output)
    );
}
