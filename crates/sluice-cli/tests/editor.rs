//! The web editor in a real browser: headless Chromium (Debian's `chromium`) driven by
//! Playwright (`e2e/editor.mjs`, `playwright-core` from `e2e/package-lock.json`) against a real
//! `sluice serve` and a real mosquitto. The script logs in, breaks the code and sees the error
//! inline, fixes it and sees every vector pass, activates the version, and sees a frame this
//! test publishes on MQTT decoded in the live view; then it creates a Rust codec from the
//! template, compiles it in the backend (vectors pass) and sees a compile error on its line.
//!
//! `./scripts/test` installs what it needs (`apt-get install chromium`, `npm ci --prefix e2e`).
//! `SLUICE_E2E_SCREENSHOT=docs/editor.png` writes the final screenshot there.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_brokers::{Mosquitto, MqttProbe, QoS};
use support::{Service, create_binding, create_tenant, http, upload_and_activate};

const JS_LPP: &str = include_str!("../../../js/fixtures/cayenne-lpp.js");
const VECTORS: &str = r#"vectors:
  - name: two temperatures
    payload_hex: "03 67 01 10 05 67 00 FF"
    expect: { temperature_3: 27.2, temperature_5: 25.5 }
  - name: negative temperature
    payload_hex: "01 67 FF D7"
    expect: { temperature_1: -4.1 }
  - name: gps
    payload_hex: "01 88 06 76 5f f2 96 0a 00 03 e8"
    expect: { gps_1: { latitude: 42.3519, longitude: -87.9094, altitude: 10 } }
"#;
/// The Cayenne LPP documentation frame with two temperatures.
const FRAME: [u8; 8] = [0x03, 0x67, 0x01, 0x10, 0x05, 0x67, 0x00, 0xFF];
/// The whole browser session, compiles included (a tenant's first Rust build compiles the
/// SDK's dependencies).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(1000);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} is missing: install it with `apt-get install -y chromium` (./scripts/test does)",
        path.display()
    );
    path
}

fn check_playwright(root: &Path) {
    assert!(
        root.join("e2e/node_modules/playwright-core").is_dir(),
        "e2e/node_modules/playwright-core is missing: run `npm ci --prefix e2e` (./scripts/test does)"
    );
}

/// A tenant with codec `lpp-js` (the JavaScript Cayenne LPP codec, active) and binding
/// `uplinks` from `acme/devices/+/up` to `acme/decoded/{device}`.
fn set_up(service: &Service) -> String {
    let token = create_tenant(service, "acme");
    upload_and_activate(
        service,
        &token,
        "lpp-js",
        &json!({ "js_source": JS_LPP, "vectors_yaml": VECTORS }),
    );
    create_binding(
        service,
        &token,
        &json!({
            "name": "uplinks", "codec": "lpp-js",
            "sources": [{ "type": "mqtt", "topic": "acme/devices/+/up", "port": 1 }],
            "sinks": [{ "type": "mqtt", "topic": "acme/decoded/{device}", "format": "json" }]
        }),
    );
    token
}

/// Publishes `FRAME` every 300 ms until `stop` is set.
fn publish_until(broker_url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        rt.block_on(async {
            let probe = MqttProbe::connect(&broker_url).await.expect("probe");
            while !stop.load(Ordering::Relaxed) {
                probe
                    .publish("acme/devices/field-7/up", FRAME.to_vec(), QoS::AtLeastOnce)
                    .await
                    .expect("publish");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
    })
}

#[test]
fn the_editor_compiles_tests_activates_and_shows_live_messages() {
    let root = repo_root();
    let chromium = chromium();
    check_playwright(&root);
    let broker = Mosquitto::start().expect("mosquitto");
    let dir = tempfile::tempdir().expect("tempdir");
    // Shared with crates/sluice-builder's tests: the SDK's dependencies compile once.
    let builds = root.join("target/rust-builds-test");
    let service = Service::start(
        &dir.path().join("data"),
        &[
            "--mqtt",
            &broker.url(),
            "--mqtt-client-id",
            "editor",
            "--rust-builds",
            "on",
            "--rust-builds-dir",
            builds.to_str().expect("utf-8 path"),
        ],
    );
    let token = set_up(&service);
    let screenshot = std::env::var_os("SLUICE_E2E_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("editor.png"));

    let mut script = Command::new("node")
        .arg(root.join("e2e/editor.mjs"))
        .env("SLUICE_URL", service.url(""))
        .env("SLUICE_TOKEN", &token)
        .env("SLUICE_MODULE", "lpp-js")
        .env("SLUICE_BINDING", "uplinks")
        .env("SLUICE_SCREENSHOT", &screenshot)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs e2e/editor.mjs");
    let stdout = script.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("editor.mjs: {line}");
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut publisher = None;
    let mut seen_ok = false;
    loop {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.trim() == "READY-FOR-MQTT" && publisher.is_none() => {
                publisher = Some(publish_until(broker.url(), stop.clone()));
            }
            Ok(line) if line.trim() == "E2E-OK" => seen_ok = true,
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = script.kill();
            break;
        }
    }
    let status = script.wait().expect("wait for node");
    stop.store(true, Ordering::Relaxed);
    if let Some(publisher) = publisher {
        publisher.join().expect("publisher");
    }
    assert!(
        status.success() && seen_ok,
        "the browser session failed ({status}); service log:\n{}",
        service.stderr()
    );
    let png = std::fs::read(&screenshot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");

    // The version the browser activated is live, and built from the source it showed.
    let (status, module) = http(
        "GET",
        &service.url("/v1/modules/lpp-js"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{module}");
    let active = module["active_version"]
        .as_u64()
        .expect("an active version");
    let (_, version) = http(
        "GET",
        &service.url(&format!("/v1/modules/lpp-js/versions/{active}")),
        Some(&token),
        None,
    );
    assert_eq!(version["source_language"], "javascript", "{version}");
    assert!(
        version["source"]
            .as_str()
            .unwrap_or("")
            .contains("decodeUplink"),
        "{version}"
    );
}
