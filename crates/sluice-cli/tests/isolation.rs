//! Process isolation end to end: `sluice serve --isolation process` runs each tenant's code
//! in its own sandboxed worker process; killing one tenant's worker mid-stream costs that
//! tenant no message and the other tenant nothing.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use sluice_test_programs as tp;
use support::{Service, create_binding, create_tenant, http, upload_codec};

fn tenant(service: &Service, id: &str) -> String {
    let token = create_tenant(service, id);
    upload_codec(service, &token, "lpp", tp::CAYENNE_LPP_BYTES);
    create_binding(
        service,
        &token,
        &json!({ "name": "b", "codec": "lpp", "sinks": [{ "type": "file", "path": "out.jsonl" }] }),
    );
    token
}

fn batch(prefix: &str, n: usize) -> Value {
    json!({ "messages": (0..n)
        .map(|i| json!({ "device_id": format!("{prefix}{i}"), "port": 1, "payload_hex": "03 67 01 10 05 67 00 FF" }))
        .collect::<Vec<_>>() })
}

fn worker_pid(service: &Service, token: &str) -> u32 {
    let (_, body) = http(
        "GET",
        &service.url("/v1/bindings/b/status"),
        Some(token),
        None,
    );
    body["worker_pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no worker pid: {body}")) as u32
}

#[test]
fn each_tenant_runs_in_its_own_worker_and_a_killed_worker_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = Service::start(&dir.path().join("data"), &["--isolation", "process"]);
    let a = tenant(&service, "alpha");
    let b = tenant(&service, "beta");

    // Both decode through their own worker process.
    for token in [&a, &b] {
        let (status, body) = http(
            "POST",
            &service.url("/v1/bindings/b/messages"),
            Some(token),
            Some(&batch("w", 1)),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["results"][0]["outcome"],
            "delivered",
            "{body}\n{}",
            service.stderr()
        );
    }
    let (pid_a, pid_b) = (worker_pid(&service, &a), worker_pid(&service, &b));
    assert_ne!(pid_a, pid_b, "tenants share a worker process");
    assert_ne!(pid_a, service.child.id());

    // Kill alpha's worker while both tenants send.
    let send = |token: String, prefix: &'static str| {
        let url = service.url("/v1/bindings/b/messages");
        std::thread::spawn(move || {
            let mut outcomes = Vec::new();
            for round in 0..10 {
                let (status, body) = http(
                    "POST",
                    &url,
                    Some(&token),
                    Some(&batch(&format!("{prefix}{round}-"), 20)),
                );
                assert_eq!(status, 200, "{body}");
                outcomes.extend(
                    body["results"]
                        .as_array()
                        .expect("results")
                        .iter()
                        .map(|r| r["outcome"].as_str().unwrap_or("").to_string()),
                );
            }
            outcomes
        })
    };
    let sender_a = send(a.clone(), "a");
    let sender_b = send(b.clone(), "b");
    std::thread::sleep(Duration::from_millis(50));
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid_a.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let outcomes_a = sender_a.join().expect("sender a");
    let outcomes_b = sender_b.join().expect("sender b");

    // Every message of both tenants is settled; the other tenant saw nothing of it.
    assert_eq!(outcomes_a.len(), 200);
    assert_eq!(outcomes_b.len(), 200);
    assert!(
        outcomes_b.iter().all(|o| o == "delivered"),
        "{outcomes_b:?}"
    );
    let delivered_a = outcomes_a.iter().filter(|o| *o == "delivered").count();
    let (_, dlq) = http("GET", &service.url("/v1/dlq"), Some(&a), None);
    assert_eq!(
        delivered_a as u64 + dlq["depth"].as_u64().unwrap_or(0),
        200,
        "{outcomes_a:?}"
    );
    // The message in flight when the worker died was retried in the new worker.
    assert_eq!(delivered_a, 200, "{outcomes_a:?}\n{}", service.stderr());
    let new_pid = worker_pid(&service, &a);
    assert_ne!(new_pid, pid_a, "the worker was not restarted");
    assert_eq!(
        worker_pid(&service, &b),
        pid_b,
        "the other tenant's worker was touched"
    );
}

/// The lines of the service's log that say a worker process of `tenant` started.
fn worker_starts(service: &Service, tenant: &str) -> usize {
    service
        .stderr()
        .lines()
        .filter(|l| l.contains("worker process started") && l.contains(&format!("tenant={tenant}")))
        .count()
}

#[test]
fn the_api_runs_a_tenants_code_in_its_worker_process_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = Service::start(&dir.path().join("data"), &["--isolation", "process"]);
    let token = create_tenant(&service, "gamma");
    assert_eq!(worker_starts(&service, "gamma"), 0);

    // An upload's vectors run before it is stored: in the tenant's worker, though the tenant
    // has no binding yet.
    use base64::Engine as _;
    let component = base64::engine::general_purpose::STANDARD.encode(tp::CAYENNE_LPP_BYTES);
    let vectors = "vectors:\n  - name: two temperatures\n    payload_hex: \"03 67 01 10 05 67 00 FF\"\n    expect: { temperature_3: 27.2, temperature_5: 25.5 }\n";
    support::upload_and_activate(
        &service,
        &token,
        "lpp",
        &json!({ "component_base64": component, "vectors_yaml": vectors }),
    );
    assert_eq!(worker_starts(&service, "gamma"), 1, "{}", service.stderr());

    // A trial decode and a check run there as well, in the same worker.
    let (status, body) = http(
        "POST",
        &service.url("/v1/modules/lpp/decode"),
        Some(&token),
        Some(&json!({ "payload_hex": "03 67 01 10" })),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["document"]["temperature_3"], json!(27.2));
    let (status, body) = http(
        "POST",
        &service.url("/v1/modules/lpp/check"),
        Some(&token),
        Some(
            &json!({ "component_base64": component, "vectors_yaml": vectors,
                      "try": { "payload_hex": "05 67 00 FF" } }),
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["passed"], 1, "{body}");
    assert_eq!(
        body["try"]["document"]["temperature_5"],
        json!(25.5),
        "{body}"
    );
    assert_eq!(worker_starts(&service, "gamma"), 1, "{}", service.stderr());
}
