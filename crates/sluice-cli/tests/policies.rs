//! Limit policies end to end on `sluice serve`, with hostile guests: quarantine, restart
//! backoff and throttle, each showing the action, the API state and the metrics, and that
//! every message is accounted for (delivered + dead-lettered = sent). Pause is in
//! `tests/brokers.rs`, where its messages wait at a real broker.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_test_programs as tp;
use support::{Service, create_tenant, http, upload_codec};

const FRAME_HEX: &str = "03 67 01 10 05 67 00 FF";

struct Setup {
    service: Service,
    token: String,
    _dir: tempfile::TempDir,
}

/// A service with tenant `acme`, codec `codec` = `bytes` (active), and binding `b` with a
/// file sink and `policy`.
fn setup(bytes: &[u8], policy: Value) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = Service::start(&dir.path().join("data"), &[]);
    let token = create_tenant(&service, "acme");
    upload_codec(&service, &token, "codec", bytes);
    let (status, body) = http(
        "POST",
        &service.url("/v1/bindings"),
        Some(&token),
        Some(&json!({ "name": "b", "codec": "codec", "policy": policy,
                      "sinks": [{ "type": "file", "path": "out.jsonl" }] })),
    );
    assert_eq!(status, 201, "{body}");
    Setup {
        service,
        token,
        _dir: dir,
    }
}

fn send(s: &Setup, device: &str) -> Value {
    let (status, body) = http(
        "POST",
        &s.service.url("/v1/bindings/b/messages"),
        Some(&s.token),
        Some(&json!({ "device_id": device, "port": 1, "payload_hex": FRAME_HEX })),
    );
    assert_eq!(status, 200, "{body}");
    body
}

fn status(s: &Setup) -> Value {
    let (code, body) = http(
        "GET",
        &s.service.url("/v1/bindings/b/status"),
        Some(&s.token),
        None,
    );
    assert_eq!(code, 200, "{body}");
    body
}

fn metrics(s: &Setup) -> String {
    let (_, body) = http("GET", &s.service.url("/metrics"), None, None);
    body.as_str().unwrap_or_default().to_string()
}

fn dlq_depth(s: &Setup) -> u64 {
    let (_, body) = http("GET", &s.service.url("/v1/dlq"), Some(&s.token), None);
    body["depth"].as_u64().expect("depth")
}

#[test]
fn quarantine_trips_after_repeated_traps_and_a_probe_closes_it_after_a_fix() {
    let s = setup(
        &std::fs::read(tp::TP_PANIC).expect("tp-panic"),
        json!({ "quarantine": { "failures": 3, "window_s": 60, "cooldown_s": 1 } }),
    );
    let kinds: Vec<String> = (0..5)
        .map(|i| {
            let outcome = send(&s, &format!("d{i}"));
            assert_eq!(outcome["outcome"], "dead-lettered", "{outcome}");
            outcome["kind"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        ["trap", "trap", "trap", "quarantined", "quarantined"]
    );
    let st = status(&s);
    assert_eq!(st["worker"]["quarantine"]["state"], "open", "{st}");
    let m = metrics(&s);
    assert!(
        m.contains(r#"sluice_quarantined{tenant="acme",binding="b"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sluice_dead_letters_total{tenant="acme",binding="b",kind="quarantined"} 2"#),
        "{m}"
    );

    // The fix, then the cool-down: the next message is the probe, it passes, the breaker
    // closes.
    upload_codec(&s.service, &s.token, "codec", tp::CAYENNE_LPP_BYTES);
    std::thread::sleep(Duration::from_millis(1_100));
    let outcome = send(&s, "d5");
    assert_eq!(outcome["outcome"], "delivered", "{outcome}");
    let st = status(&s);
    assert_eq!(st["worker"]["quarantine"]["state"], "closed", "{st}");
    assert!(metrics(&s).contains(r#"sluice_quarantined{tenant="acme",binding="b"} 0"#));
    // Nothing lost: 6 sent = 1 delivered + 5 dead-lettered.
    assert_eq!(dlq_depth(&s), 5);
}

#[test]
fn quarantine_in_hold_mode_keeps_messages_waiting_instead_of_dead_lettering() {
    let s = setup(
        &std::fs::read(tp::TP_PANIC).expect("tp-panic"),
        json!({ "quarantine": { "failures": 1, "cooldown_s": 1, "hold": true } }),
    );
    assert_eq!(send(&s, "d0")["kind"], "trap");
    // The breaker is open: the next message waits for the cool-down, then runs as the probe.
    let started = Instant::now();
    let outcome = send(&s, "d1");
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(outcome["kind"], "trap", "{outcome}");
    assert_eq!(dlq_depth(&s), 2);
}

#[test]
fn restarts_after_limit_breaches_back_off_exponentially() {
    let s = setup(
        &std::fs::read(tp::TP_INFINITE_LOOP).expect("tp-infinite-loop"),
        json!({ "restart": { "backoff_initial_ms": 100, "backoff_max_ms": 400 } }),
    );
    let started = Instant::now();
    for i in 0..4 {
        let outcome = send(&s, &format!("d{i}"));
        let kind = outcome["kind"].as_str().unwrap_or_default();
        assert!(
            kind == "fuel-exhausted" || kind == "deadline-exceeded",
            "{outcome}"
        );
    }
    // Restart delays 0, 100, 200 ms came before messages 2, 3 and 4.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    let st = status(&s);
    assert_eq!(st["worker"]["restarts"], 4, "{st}");
    assert_eq!(st["worker"]["restart_backoff_ms"], 400, "{st}");
    let m = metrics(&s);
    assert!(
        m.contains(r#"sluice_instance_restarts_total{tenant="acme",binding="b"} 4"#),
        "{m}"
    );
    assert_eq!(dlq_depth(&s), 4);
}

#[test]
fn a_throttled_binding_makes_messages_wait_and_loses_none() {
    let s = setup(
        tp::CAYENNE_LPP_BYTES,
        json!({ "throttle": { "messages_per_second": 20, "burst_seconds": 0.1 } }),
    );
    let messages: Vec<Value> = (0..12)
        .map(|i| json!({ "device_id": format!("t{i}"), "port": 1, "payload_hex": FRAME_HEX }))
        .collect();
    let started = Instant::now();
    let (code, body) = http(
        "POST",
        &s.service.url("/v1/bindings/b/messages"),
        Some(&s.token),
        Some(&json!({ "messages": messages })),
    );
    let elapsed = started.elapsed();
    assert_eq!(code, 200, "{body}");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 12);
    assert!(
        results.iter().all(|r| r["outcome"] == "delivered"),
        "{body}"
    );
    // A burst of 2, then 20 per second: the other 10 took at least ~0.5 s.
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    let st = status(&s);
    assert!(
        st["worker"]["throttled_ms"].as_u64().unwrap_or(0) >= 300,
        "{st}"
    );
    assert!(metrics(&s).contains(r#"sluice_throttled_seconds_total{tenant="acme",binding="b"}"#));
    assert_eq!(dlq_depth(&s), 0);
}

#[test]
fn a_tenant_budget_is_shared_by_all_its_bindings() {
    let s = setup(tp::CAYENNE_LPP_BYTES, json!({}));
    let (status, body) = http(
        "POST",
        &s.service.url("/v1/bindings"),
        Some(&s.token),
        Some(&json!({ "name": "b2", "codec": "codec",
                      "sinks": [{ "type": "file", "path": "out2.jsonl" }] })),
    );
    assert_eq!(status, 201, "{body}");
    let admin = s.service.token("admin-token");
    let throttle_url = s.service.url("/v1/tenants/acme/throttle");

    // Bad budgets are refused with the field named; a tenant token may not set one.
    let (code, body) = http(
        "PUT",
        &throttle_url,
        Some(&admin),
        Some(&json!({ "messages_per_second": -1 })),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"]["field"], "messages_per_second", "{body}");
    let (code, body) = http(
        "PUT",
        &throttle_url,
        Some(&admin),
        Some(&json!({ "colour": 1 })),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("colour"),
        "{body}"
    );
    let (code, _) = http(
        "PUT",
        &throttle_url,
        Some(&s.token),
        Some(&json!({ "messages_per_second": 1000 })),
    );
    assert_eq!(code, 403);

    // 20 messages/s for the tenant, neither binding limited on its own.
    let (code, body) = http(
        "PUT",
        &throttle_url,
        Some(&admin),
        Some(&json!({ "messages_per_second": 20, "burst_seconds": 0.1 })),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["throttle"]["messages_per_second"], 20.0, "{body}");

    let started = Instant::now();
    let senders: Vec<_> = ["b", "b2"]
        .into_iter()
        .map(|binding| {
            let url = s.service.url(&format!("/v1/bindings/{binding}/messages"));
            let token = s.token.clone();
            std::thread::spawn(move || {
                let messages: Vec<Value> = (0..10)
                    .map(|i| json!({ "device_id": format!("{binding}-{i}"), "port": 1, "payload_hex": FRAME_HEX }))
                    .collect();
                http("POST", &url, Some(&token), Some(&json!({ "messages": messages })))
            })
        })
        .collect();
    for sender in senders {
        let (code, body) = sender.join().expect("sender");
        assert_eq!(code, 200, "{body}");
        let results = body["results"].as_array().expect("results");
        assert_eq!(results.len(), 10);
        assert!(
            results.iter().all(|r| r["outcome"] == "delivered"),
            "{body}"
        );
    }
    // 20 messages through one budget: a burst of 2, then 20 per second, so at least ~0.9 s;
    // each binding alone would have had no limit.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(800), "{elapsed:?}");
    let waited: u64 = ["b", "b2"]
        .iter()
        .map(|binding| {
            let (_, st) = http(
                "GET",
                &s.service.url(&format!("/v1/bindings/{binding}/status")),
                Some(&s.token),
                None,
            );
            st["worker"]["tenant_throttled_ms"].as_u64().unwrap_or(0)
        })
        .sum();
    assert!(waited >= 500, "tenant throttle waits: {waited} ms");
    assert_eq!(dlq_depth(&s), 0);

    // The CLI shows and clears it.
    let sluice = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .args(["--server", &s.service.url(""), "--token", &admin])
            .output()
            .expect("run sluice");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON output")
    };
    let shown = sluice(&["tenant", "show", "acme"]);
    assert_eq!(shown["throttle"]["messages_per_second"], 20.0, "{shown}");
    let cleared = sluice(&["tenant", "throttle", "acme", "--clear"]);
    assert!(cleared.get("throttle").is_none(), "{cleared}");
    let set = sluice(&["tenant", "throttle", "acme", "--fuel-per-second", "1000000"]);
    assert_eq!(set["throttle"]["fuel_per_second"], 1_000_000, "{set}");
    let (code, body) = http("DELETE", &throttle_url, Some(&admin), None);
    assert_eq!(code, 200, "{body}");
    assert!(body.get("throttle").is_none(), "{body}");
}

/// Sends `payload` to binding `b` and returns the outcome.
fn send_bytes(s: &Setup, payload: &[u8]) -> Value {
    let (status, body) = http(
        "POST",
        &s.service.url("/v1/bindings/b/messages"),
        Some(&s.token),
        Some(&json!({ "device_id": "d", "port": 1, "payload_hex": hex::encode(payload) })),
    );
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn guest_metrics_reach_prometheus_and_a_guest_cannot_invent_names_without_bound() {
    let s = setup(&std::fs::read(tp::TP_ECHO).expect("tp-echo"), json!({}));
    for _ in 0..3 {
        assert_eq!(send_bytes(&s, b"metrics")["outcome"], "delivered");
    }
    let m = metrics(&s);
    let labels = r#"tenant="acme",binding="b",module="codec""#;
    for series in [
        format!(r#"sluice_guest_counter_total{{{labels},name="echo_metrics_calls"}} 3"#),
        format!(r#"sluice_guest_gauge{{{labels},name="echo_gauge"}} 2.5"#),
    ] {
        assert!(m.contains(&series), "{series} missing:\n{m}");
    }

    // 70 more names: the module may have 64 in this binding (2 taken above); the updates of
    // the last 8 are dropped and counted, and the messages are still delivered.
    for i in 0..70 {
        let outcome = send_bytes(&s, format!("m:invented_{i}").as_bytes());
        assert_eq!(outcome["outcome"], "delivered", "{outcome}");
    }
    let m = metrics(&s);
    let kept = m
        .lines()
        .filter(|l| l.starts_with("sluice_guest_counter_total{") && l.contains("invented_"))
        .count();
    assert_eq!(kept, 62, "{m}");
    assert!(
        m.contains(&format!(
            r#"sluice_guest_metric_updates_dropped_total{{{labels}}} 8"#
        )),
        "{m}"
    );
    // Names already known keep counting.
    send_bytes(&s, b"metrics");
    assert!(metrics(&s).contains(&format!(
        r#"sluice_guest_counter_total{{{labels},name="echo_metrics_calls"}} 4"#
    )));
}
