//! One tenant's slow code must not raise another tenant's latency: tenant A floods a binding
//! whose codec burns its whole CPU budget on every message, while tenant B's messages keep
//! their latency. Each binding has its own worker thread, so A costs B at most a share of
//! the CPU; the bound below is generous for a 2-core machine under a test runner. The
//! figures with and without A, in process and in worker processes, are printed by
//! `cargo bench -p sluice-cli --bench isolation`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_test_programs as tp;
use support::{Service, create_binding, create_tenant, http, upload_codec};

fn tenant_with_binding(
    service: &Service,
    tenant: &str,
    bytes: &[u8],
    policy: serde_json::Value,
) -> String {
    let token = create_tenant(service, tenant);
    upload_codec(service, &token, "codec", bytes);
    create_binding(
        service,
        &token,
        &json!({ "name": "b", "codec": "codec", "policy": policy,
                 "sinks": [{ "type": "file", "path": "out.jsonl" }] }),
    );
    token
}

fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[(samples.len() * 99 / 100).min(samples.len() - 1)]
}

#[test]
fn a_tenant_burning_its_cpu_budget_does_not_stall_another_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = Service::start(&dir.path().join("data"), &[]);
    // A: every message runs until its fuel or deadline is gone; restarts are not delayed.
    let token_a = tenant_with_binding(
        &service,
        "noisy",
        &std::fs::read(tp::TP_INFINITE_LOOP).expect("tp-infinite-loop"),
        json!({ "restart": { "backoff_initial_ms": 1, "backoff_max_ms": 1 } }),
    );
    let token_b = tenant_with_binding(&service, "quiet", tp::CAYENNE_LPP_BYTES, json!({}));

    let frame = json!({ "device_id": "d", "port": 1, "payload_hex": "03 67 01 10 05 67 00 FF" });
    let measure = |n: usize| -> Vec<Duration> {
        (0..n)
            .map(|_| {
                let started = Instant::now();
                let (status, body) = http(
                    "POST",
                    &service.url("/v1/bindings/b/messages"),
                    Some(&token_b),
                    Some(&frame),
                );
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["outcome"], "delivered", "{body}");
                started.elapsed()
            })
            .collect()
    };
    measure(10); // loads and instantiates B's codec
    let quiet = p99(measure(100));

    // A floods: batches of 50 messages, back to back, from two threads.
    let stop = Arc::new(AtomicBool::new(false));
    let burned = Arc::new(AtomicU64::new(0));
    let floods: Vec<_> = (0..2)
        .map(|_| {
            let (stop, burned, url, token) = (
                stop.clone(),
                burned.clone(),
                service.url("/v1/bindings/b/messages"),
                token_a.clone(),
            );
            std::thread::spawn(move || {
                let batch = json!({ "messages": (0..50).map(|i| json!({ "device_id": format!("a{i}"), "payload_hex": "00" })).collect::<Vec<_>>() });
                while !stop.load(Ordering::Relaxed) {
                    let (status, body) = http("POST", &url, Some(&token), Some(&batch));
                    assert_eq!(status, 200, "{body}");
                    burned.fetch_add(50, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let noisy = p99(measure(100));
    stop.store(true, Ordering::Relaxed);
    for f in floods {
        f.join().expect("flood thread");
    }
    println!(
        "tenant B p99 over HTTP: {quiet:?} alone, {noisy:?} next to tenant A ({} messages of A burnt their budget)",
        burned.load(Ordering::Relaxed)
    );
    assert!(burned.load(Ordering::Relaxed) > 0, "tenant A ran nothing");
    assert!(
        noisy < Duration::from_millis(250),
        "tenant B's p99 rose to {noisy:?} (alone: {quiet:?})"
    );
}
