//! `sluice serve` as an operator meets it: a real process, its HTTP API, its files, its
//! signals. The broker tests are in `tests/brokers.rs`.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Service, eventually, http};

#[test]
fn the_demo_decodes_dead_letters_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut service = Service::start(&data, &["--demo", "--demo-rate", "50"]);
    let token = service.token("demo-token");
    assert!(data.join("admin-token").exists());

    // The simulated devices: decoded messages and dead letters show up.
    let recent = eventually(Duration::from_secs(30), || {
        let (status, body) = http(
            "GET",
            &service.url("/v1/bindings/lpp/recent"),
            Some(&token),
            None,
        );
        assert_eq!(status, 200, "{body}");
        let messages = body["messages"].as_array()?.clone();
        let delivered = messages
            .iter()
            .filter(|m| m["outcome"] == "delivered")
            .count();
        let dead = messages
            .iter()
            .filter(|m| m["outcome"] == "dead-lettered")
            .count();
        (delivered >= 5 && dead >= 1).then_some(messages)
    })
    .unwrap_or_else(|| panic!("no demo traffic:\n{}", service.stderr()));
    assert!(
        recent.iter().any(|m| m["kind"] == "guest-error"),
        "{recent:?}"
    );
    assert!(
        recent
            .iter()
            .filter(|m| m["outcome"] == "delivered")
            .all(|m| m["document"].is_object()),
        "a delivered message shows its decoded document: {recent:?}"
    );
    // The JavaScript codec, built from source at setup, decodes its binding's frames.
    let js = eventually(Duration::from_secs(30), || {
        let (status, body) = http(
            "GET",
            &service.url("/v1/bindings/lpp-js/recent"),
            Some(&token),
            None,
        );
        assert_eq!(status, 200, "{body}");
        let messages = body["messages"].as_array()?.clone();
        messages.into_iter().find(|m| m["outcome"] == "delivered")
    })
    .unwrap_or_else(|| panic!("no JavaScript demo traffic:\n{}", service.stderr()));
    assert!(js["document"]["temperature_3"].is_number(), "{js}");
    let (status, version) = http(
        "GET",
        &service.url("/v1/modules/lpp-js/versions/1"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{version}");
    assert_eq!(version["source_language"], "javascript", "{version}");

    // A message sent through the API is decoded and answered with its outcome.
    let (status, body) = http(
        "POST",
        &service.url("/v1/bindings/lpp/messages"),
        Some(&token),
        Some(
            &json!({ "device_id": "api-sensor", "port": 1, "payload_hex": "03 67 01 10 05 67 00 FF" }),
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "delivered", "{body}");
    assert_eq!(body["outputs"], json!(["decoded", "senml"]));
    let decoded = std::fs::read_to_string(data.join("sinks/demo/lpp.jsonl")).expect("sink file");
    let line = decoded
        .lines()
        .find(|l| l.contains("api-sensor"))
        .expect("the API message in the file sink");
    let line: serde_json::Value = serde_json::from_str(line).expect("json line");
    assert_eq!(
        line["data"],
        json!({ "temperature_3": 27.2, "temperature_5": 25.5 })
    );

    // The dead letters are listed with their typed reason.
    let (status, body) = http(
        "GET",
        &service.url("/v1/dlq?binding=lpp"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let first = &body["dead_letters"][0];
    assert_eq!(first["failure_kind"], "guest-error", "{body}");
    assert!(
        first["failure"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("truncated")),
        "{first}"
    );

    // Health and metrics.
    let (status, body) = http("GET", &service.url("/readyz"), None, None);
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("ready")),
        "{body}"
    );
    let (status, metrics) = http("GET", &service.url("/metrics"), None, None);
    assert_eq!(status, 200);
    let metrics = metrics.as_str().expect("text");
    for series in [
        r#"sluice_messages_total{tenant="demo",binding="lpp",outcome="delivered"}"#,
        r#"sluice_dead_letters_total{tenant="demo",binding="lpp",kind="guest-error"}"#,
        "sluice_guest_call_seconds_bucket",
        r#"sluice_dlq_depth{tenant="demo"}"#,
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }

    // SIGTERM: stops intake, settles, exits 0.
    service.signal("TERM");
    assert_eq!(
        service.wait(Duration::from_secs(30)),
        Some(0),
        "{}",
        service.stderr()
    );
    let said: Vec<String> = service.stdout.try_iter().collect();
    assert!(said.iter().any(|l| l == "sluice: stopped"), "{said:?}");
}

#[test]
fn a_restart_keeps_the_registry_and_the_dead_letters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut service = Service::start(&data, &["--demo", "--demo-rate", "50"]);
    let token = service.token("demo-token");
    let depth = eventually(Duration::from_secs(30), || {
        let (_, body) = http("GET", &service.url("/v1/dlq"), Some(&token), None);
        body["depth"].as_u64().filter(|d| *d >= 2)
    })
    .expect("dead letters");
    service.signal("INT");
    assert_eq!(service.wait(Duration::from_secs(30)), Some(0));

    // Started again without the demo: same tokens, modules and dead letters.
    let service = Service::start(&data, &[]);
    let (status, body) = http("GET", &service.url("/v1/dlq"), Some(&token), None);
    assert_eq!(status, 200, "{body}");
    assert!(body["depth"].as_u64().expect("depth") >= depth, "{body}");
    let (status, body) = http("GET", &service.url("/v1/modules"), Some(&token), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["modules"].as_array().map(Vec::len), Some(4), "{body}");
}

#[test]
fn a_bad_config_file_is_refused_with_every_problem_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, "[server]\nlisten = \"127.0.0.1:0\"\nlisen = 3\n").expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown field `lisen`"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");

    std::fs::write(
        &config,
        "[server]\nlisten = \"nowhere\"\n[pipeline]\nmax_in_flight = 0\n[mqtt]\nurl = \"mqtts://broker\"\n",
    )
    .expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("3 problem(s)"), "{stderr}");
    assert!(stderr.contains("server.listen: `nowhere`"), "{stderr}");
    assert!(stderr.contains("pipeline.max_in_flight"), "{stderr}");
    assert!(stderr.contains("mqtt.url `mqtts://broker`"), "{stderr}");
}

fn cli(service: &Service, token: &str, args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("SLUICE_SERVER", &service.base)
        .env("SLUICE_TOKEN", token)
        .env_remove("RUST_LOG")
        .output()
        .expect("sluice runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_cli_pauses_resumes_and_replays_on_a_running_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let service = Service::start(&data, &["--demo", "--demo-rate", "50"]);
    let token = service.token("demo-token");

    let (code, out, err) = cli(&service, &token, &["binding", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("lpp") && out.contains("thermostat") && out.contains("running"),
        "{out}"
    );

    let (code, out, err) = cli(&service, &token, &["binding", "pause", "lpp"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("paused"), "{out}");
    let (code, out, err) = cli(&service, &token, &["binding", "status", "lpp"]);
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(status["paused"], true, "{out}");
    let (code, _, err) = cli(&service, &token, &["binding", "resume", "lpp"]);
    assert_eq!(code, 0, "{err}");

    // The demo's cut frames are in the queue; replaying them fails the same way again.
    eventually(Duration::from_secs(30), || {
        let (_, out, _) = cli(&service, &token, &["dlq", "list", "--binding", "lpp"]);
        out.contains("guest-error").then_some(())
    })
    .expect("dead letters");
    let (code, out, err) = cli(&service, &token, &["dlq", "replay", "--binding", "lpp"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dead-lettered again"), "{out}");
    assert!(!out.contains("replayed 0:"), "{out}");

    // Errors name the problem.
    let (code, _, err) = cli(&service, &token, &["binding", "pause", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("HTTP 404"), "{err}");
    let (code, _, err) = cli(&service, "slc_bogus", &["binding", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("HTTP 401"), "{err}");
}

#[test]
fn deploy_uploads_tests_and_activates_javascript_and_components() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = Service::start(&dir.path().join("data"), &[]);
    let token = support::create_tenant(&service, "acme");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let script = work.join("lpp.js");
    let vectors = work.join("vectors.yaml");
    std::fs::write(&script, include_str!("../../../js/fixtures/cayenne-lpp.js")).expect("script");
    std::fs::write(
        &vectors,
        "vectors:\n  - name: two temperatures\n    payload_hex: \"03 67 01 10 05 67 00 FF\"\n    expect: { temperature_3: 27.2, temperature_5: 25.5 }\n",
    )
    .expect("vectors");
    let script_arg = script.to_str().expect("utf-8 path");

    // The module is created, the vectors next to the script run on the server, and the
    // version goes live.
    let (code, out, err) = cli(&service, &token, &["deploy", script_arg]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Created module lpp (codec)"), "{out}");
    assert!(out.contains("lpp version 1 is live"), "{out}");
    assert!(out.contains("vectors of"), "{out}");
    let (status, body) = http(
        "POST",
        &service.url("/v1/modules/lpp/decode"),
        Some(&token),
        Some(&json!({ "payload_hex": "03 67 01 10 05 67 00 FF" })),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["document"]["temperature_3"], json!(27.2));

    // A syntax error names the file, line and column; nothing is stored.
    let broken = work.join("broken.js");
    std::fs::write(
        &broken,
        include_str!("../../../js/fixtures/syntax-error.js"),
    )
    .expect("broken");
    let (code, _, err) = cli(
        &service,
        &token,
        &["deploy", broken.to_str().expect("utf-8"), "--module", "lpp"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("broken.js:4:"), "{err}");

    // A failing vector is shown with its diff; nothing is stored, version 1 stays live.
    let wrong = work.join("wrong.yaml");
    std::fs::write(
        &wrong,
        "vectors:\n  - name: wrong on purpose\n    payload_hex: \"01 67 FF D7\"\n    expect: { temperature_1: 99 }\n",
    )
    .expect("wrong vectors");
    let (code, _, err) = cli(
        &service,
        &token,
        &[
            "deploy",
            script_arg,
            "--vectors",
            wrong.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("FAIL wrong on purpose"), "{err}");
    assert!(err.contains("99"), "{err}");
    let (_, module) = http("GET", &service.url("/v1/modules/lpp"), Some(&token), None);
    assert_eq!(module["active_version"], 1, "{module}");
    assert_eq!(
        module["versions"].as_array().map(Vec::len),
        Some(1),
        "{module}"
    );

    // A component of the other world cannot replace the codec.
    // (In a directory of its own: the codec's vectors.yaml would be uploaded with it.)
    std::fs::create_dir_all(work.join("router")).expect("router dir");
    let router = work.join("router/threshold.wasm");
    std::fs::write(&router, sluice_test_programs::THRESHOLD_ROUTER_BYTES).expect("router");
    let (code, _, err) = cli(
        &service,
        &token,
        &["deploy", router.to_str().expect("utf-8"), "--module", "lpp"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is a codec, but this is a router"), "{err}");

    // A component, uploaded without activation.
    let (code, out, err) = cli(
        &service,
        &token,
        &["deploy", router.to_str().expect("utf-8"), "--no-activate"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("threshold version 1"), "{out}");
    assert!(out.contains("Not activated"), "{out}");
    let (_, module) = http(
        "GET",
        &service.url("/v1/modules/threshold"),
        Some(&token),
        None,
    );
    assert_eq!(module["world"], "router", "{module}");
    assert_eq!(module["active_version"], json!(null), "{module}");
}

/// The `sluice new codec` template's code and vectors, as a customer starts.
fn rust_template() -> (String, String) {
    let fill = |t: &str| {
        t.replace("{{name}}", "climate")
            .replace("{{Type}}", "Climate")
    };
    (
        fill(include_str!("../templates/codec.lib.rs.tmpl")),
        fill(include_str!("../templates/codec.vectors.yaml.tmpl")),
    )
}

#[test]
fn the_service_builds_rust_sources_in_its_sandbox() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Shared with crates/sluice-builder's tests: the SDK's dependencies compile once.
    let builds =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/rust-builds-test");
    let builds = builds.to_str().expect("utf-8 path");
    let service = Service::start(
        &dir.path().join("data"),
        &["--rust-builds", "on", "--rust-builds-dir", builds],
    );
    let token = support::create_tenant(&service, "acme");
    let (status, body) = http(
        "POST",
        &service.url("/v1/modules"),
        Some(&token),
        Some(&json!({ "name": "climate", "world": "codec" })),
    );
    assert_eq!(status, 201, "{body}");
    let (source, vectors) = rust_template();

    // A compile error: 422 with the compiler's diagnostics, the first error's line and column.
    let broken = source.replacen("/ 10.0;", "/ ten;", 1);
    let line = broken
        .lines()
        .position(|l| l.contains("/ ten;"))
        .expect("the line")
        + 1;
    let (status, body) = http(
        "POST",
        &service.url("/v1/modules/climate/check"),
        Some(&token),
        Some(&json!({ "rust_source": broken })),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "rust-compile-error", "{body}");
    assert_eq!(body["line"], line, "{body}");
    assert_eq!(body["diagnostics"][0]["file"], "src/lib.rs", "{body}");
    assert!(
        body["diagnostics"][0]["rendered"]
            .as_str()
            .unwrap_or("")
            .contains("ten"),
        "{body}"
    );

    // The fixed code: every vector passes, then it is stored with its source and decodes.
    let (status, body) = http(
        "POST",
        &service.url("/v1/modules/climate/check"),
        Some(&token),
        Some(&json!({ "rust_source": source, "vectors_yaml": vectors,
                      "try": { "payload_hex": "00 EB 2D" } })),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["failed"], 0, "{body}");
    assert_eq!(
        body["try"]["document"]["temperature"],
        json!(23.5),
        "{body}"
    );
    let (status, body) = http(
        "POST",
        &service.url("/v1/modules/climate/versions"),
        Some(&token),
        Some(&json!({ "rust_source": source, "vectors_yaml": vectors })),
    );
    assert_eq!(status, 201, "{body}");
    let (_, version) = http(
        "GET",
        &service.url("/v1/modules/climate/versions/1"),
        Some(&token),
        None,
    );
    assert_eq!(version["source_language"], "rust", "{version}");
    assert_eq!(version["source"], json!(source));

    // `sluice deploy --source` sends a project's lib.rs and vectors; the server builds them.
    let project = dir.path().join("thermo");
    std::fs::create_dir_all(project.join("src")).expect("project");
    std::fs::write(
        project.join("sluice.toml"),
        "[module]\nname = \"thermo\"\nworld = \"codec\"\n",
    )
    .expect("manifest");
    std::fs::write(project.join("src/lib.rs"), &source).expect("lib.rs");
    std::fs::write(project.join("vectors.yaml"), &vectors).expect("vectors");
    let project_arg = project.to_str().expect("utf-8 path");
    let (code, out, err) = cli(&service, &token, &["deploy", project_arg, "--source"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("thermo version 1 is live"), "{out}");
    std::fs::write(project.join("src/lib.rs"), &broken).expect("broken lib.rs");
    let (code, _, err) = cli(&service, &token, &["deploy", project_arg, "--source"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot find value `ten`"), "{err}");
    assert!(err.contains("src/lib.rs:"), "rustc's excerpt: {err}");
}

#[test]
fn a_javascript_codec_keeps_device_state_reads_the_binding_config_and_reports_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut service = Service::start(&data, &[]);
    let token = support::create_tenant(&service, "acme");
    let script = dir.path().join("counter.js");
    std::fs::write(&script, include_str!("../../../js/fixtures/host-apis.js")).expect("script");
    let (code, out, err) = cli(
        &service,
        &token,
        &["deploy", script.to_str().expect("utf-8 path")],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    support::create_binding(
        &service,
        &token,
        &json!({ "name": "counting", "codec": "counter", "config": { "scale": "10" },
                "sinks": [{ "type": "file", "path": "counting.jsonl" }] }),
    );
    let send = |service: &Service, device: &str, hex: &str| {
        let (status, body) = http(
            "POST",
            &service.url("/v1/bindings/counting/messages"),
            Some(&token),
            Some(&json!({ "device_id": device, "port": 1, "payload_hex": hex })),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["outcome"], "delivered", "{body}");
    };
    send(&service, "a", "03");
    send(&service, "a", "04");
    send(&service, "b", "05");
    let (_, metrics) = http("GET", &service.url("/metrics"), None, None);
    let metrics = metrics.as_str().expect("text").to_string();
    let frames = r#"sluice_guest_counter_total{tenant="acme",binding="counting",module="counter",name="frames"} 3"#;
    assert!(metrics.contains(frames), "{frames} missing:\n{metrics}");

    // The state is in the store: after a restart device `a` goes on counting.
    service.signal("TERM");
    assert_eq!(service.wait(Duration::from_secs(30)), Some(0));
    let service = Service::start(&data, &[]);
    send(&service, "a", "06");
    let lines = std::fs::read_to_string(data.join("sinks/acme/counting.jsonl")).expect("sink");
    let documents: Vec<(String, serde_json::Value)> = lines
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("json line");
            (
                record["device_id"].as_str().unwrap_or_default().to_string(),
                record["data"].clone(),
            )
        })
        .collect();
    let counts: Vec<(&str, i64, i64)> = documents
        .iter()
        .map(|(device, data)| {
            (
                device.as_str(),
                data["count"].as_i64().unwrap_or(-1),
                data["scaled"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [("a", 1, 30), ("a", 2, 40), ("b", 1, 50), ("a", 3, 60)],
        "{lines}"
    );
    assert_eq!(documents[1].1["previous"], json!([3]));
}
