//! `sluice serve` with real brokers: mosquitto and nats-server started on free loopback
//! ports (crate `sluice-brokers`), set up through the HTTP API as a user would.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_brokers::{Mosquitto, MqttProbe, NatsProbe, NatsServer, QoS};
use sluice_test_programs as tp;
use support::{Service, create_binding, create_tenant, eventually, http, upload_codec};

/// The Cayenne LPP documentation frame with two temperatures.
const FRAME: [u8; 8] = [0x03, 0x67, 0x01, 0x10, 0x05, 0x67, 0x00, 0xFF];

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio")
}

/// Publishes `FRAME` from device `warmup` until something arrives on the probe: the
/// service's subscription is live from then on.
fn warm_up(rt: &tokio::runtime::Runtime, probe: &mut MqttProbe, topic: &str) {
    let arrived = rt.block_on(async {
        for _ in 0..100 {
            probe
                .publish(topic, FRAME.to_vec(), QoS::AtLeastOnce)
                .await
                .expect("publish");
            if probe
                .next_message(Duration::from_millis(300))
                .await
                .is_some()
            {
                return true;
            }
        }
        false
    });
    assert!(arrived, "the service never answered on MQTT");
    // Drain the rest of the warm-up answers.
    rt.block_on(async {
        while probe
            .next_message(Duration::from_millis(500))
            .await
            .is_some()
        {}
    });
}

fn serve_with_mqtt(data: &Path, broker: &Mosquitto, client_id: &str) -> Service {
    Service::start(
        data,
        &["--mqtt", &broker.url(), "--mqtt-client-id", client_id],
    )
}

#[test]
fn mqtt_frames_come_out_decoded_in_every_format() {
    let broker = Mosquitto::start().expect("mosquitto");
    let dir = tempfile::tempdir().expect("tempdir");
    // A drain timeout far beyond the test's wait: a stop that waited for it would fail.
    let mut service = Service::start(
        &dir.path().join("data"),
        &[
            "--mqtt",
            &broker.url(),
            "--mqtt-client-id",
            "formats",
            "--drain-timeout",
            "600",
        ],
    );
    let token = create_tenant(&service, "acme");
    upload_codec(&service, &token, "lpp", tp::CAYENNE_LPP_BYTES);
    let formats = ["json", "cbor", "msgpack", "senml", "influx"];
    let sinks: Vec<Value> = formats
        .iter()
        .map(|f| json!({ "type": "mqtt", "name": f, "format": f, "topic": format!("acme/out/{f}/{{device}}") }))
        .collect();
    create_binding(
        &service,
        &token,
        &json!({ "name": "uplinks", "codec": "lpp",
                "sources": [{ "type": "mqtt", "topic": "acme/devices/+/up", "port": 1 }],
                "sinks": sinks }),
    );

    let rt = tokio();
    let mut probe = rt
        .block_on(MqttProbe::connect(&broker.url()))
        .expect("probe");
    rt.block_on(probe.subscribe("acme/out/json/#"))
        .expect("subscribe");
    warm_up(&rt, &mut probe, "acme/devices/warmup/up");
    rt.block_on(probe.subscribe("acme/out/#"))
        .expect("subscribe all");
    let n = 20;
    rt.block_on(probe.publish_many(
        (0..n).map(|i| (format!("acme/devices/dev-{i}/up"), FRAME.to_vec())),
        8,
    ))
    .expect("publish");
    let received = rt.block_on(probe.collect(n * formats.len(), Duration::from_secs(30)));
    assert_eq!(received.len(), n * formats.len(), "{}", service.stderr());

    let expected = json!({ "temperature_3": 27.2, "temperature_5": 25.5 });
    for (topic, payload) in &received {
        let parts: Vec<&str> = topic.split('/').collect();
        let (format, device) = (parts[2], parts[3]);
        assert!(device.starts_with("dev-"), "{topic}");
        match format {
            "json" => {
                let v: Value = serde_json::from_slice(payload).expect("json");
                assert_eq!(v["data"], expected);
                assert_eq!(v["device_id"], device);
                assert_eq!(
                    v["metadata"]["mqtt.topic"],
                    format!("acme/devices/{device}/up")
                );
            }
            "cbor" => {
                let v: Value = ciborium::from_reader(payload.as_slice()).expect("cbor");
                assert_eq!(v["data"], expected);
            }
            "msgpack" => {
                let v: Value = rmp_serde::from_slice(payload).expect("msgpack");
                assert_eq!(v["data"], expected);
            }
            "senml" => {
                let v: Value = serde_json::from_slice(payload).expect("senml");
                assert_eq!(v[0]["bn"], format!("urn:dev:{device}:"));
                assert_eq!(v[0]["n"], "temperature_3");
                assert_eq!(v[0]["v"], 27.2);
            }
            "influx" => {
                let line = String::from_utf8(payload.clone()).expect("text");
                assert!(
                    line.starts_with(&format!(
                        "uplinks,device={device},tenant=acme,mqtt.topic=acme/devices/{device}/up \
                         temperature_3=27.2,temperature_5=25.5 "
                    )),
                    "{line}"
                );
            }
            other => panic!("unexpected topic {other}"),
        }
    }

    // A graceful stop ends once every message is settled and acknowledged, with the MQTT
    // subscriber letting go of the binding's queue when intake stops.
    service.signal("TERM");
    assert_eq!(
        service.wait(Duration::from_secs(60)),
        Some(0),
        "{}",
        service.stderr()
    );
    assert!(
        !service.stderr().contains("not every message was settled"),
        "{}",
        service.stderr()
    );
}

#[test]
fn a_failing_frame_is_dead_lettered_then_delivered_after_a_fix_and_a_replay() {
    let broker = Mosquitto::start().expect("mosquitto");
    let dir = tempfile::tempdir().expect("tempdir");
    let service = serve_with_mqtt(&dir.path().join("data"), &broker, "replay");
    let token = create_tenant(&service, "acme");
    upload_codec(&service, &token, "lpp", tp::CAYENNE_LPP_BYTES);
    create_binding(
        &service,
        &token,
        &json!({ "name": "uplinks", "codec": "lpp",
                "sources": [{ "type": "mqtt", "topic": "acme/devices/+/up" }],
                "sinks": [{ "type": "mqtt", "topic": "acme/out/{device}" }] }),
    );
    let rt = tokio();
    let mut probe = rt
        .block_on(MqttProbe::connect(&broker.url()))
        .expect("probe");
    rt.block_on(probe.subscribe("acme/out/#"))
        .expect("subscribe");
    warm_up(&rt, &mut probe, "acme/devices/warmup/up");

    // Version 2 panics on every frame: the frame is dead-lettered, nothing comes out.
    upload_codec(
        &service,
        &token,
        "lpp",
        &std::fs::read(tp::TP_PANIC).expect("tp-panic"),
    );
    rt.block_on(probe.publish("acme/devices/unlucky/up", FRAME.to_vec(), QoS::AtLeastOnce))
        .expect("publish");
    let entry = eventually(Duration::from_secs(20), || {
        let (_, body) = http("GET", &service.url("/v1/dlq"), Some(&token), None);
        body["dead_letters"].as_array()?.first().cloned()
    })
    .unwrap_or_else(|| panic!("no dead letter:\n{}", service.stderr()));
    assert_eq!(entry["uplink"]["device_id"], "unlucky");
    assert_eq!(entry["failure_kind"], "trap");
    assert_eq!(entry["module"]["version"], "2");
    assert!(
        entry["failure"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("codec panicked on purpose")),
        "{entry}"
    );
    assert!(
        rt.block_on(probe.next_message(Duration::from_millis(500)))
            .is_none()
    );

    // The fix: version 3 (the good codec again), activated; replay the queue.
    upload_codec(
        &service,
        &token,
        "lpp",
        &std::fs::read(tp::CAYENNE_LPP).expect("lpp"),
    );
    let (status, body) = http(
        "POST",
        &service.url("/v1/dlq/replay"),
        Some(&token),
        Some(&json!({})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["replayed"].as_u64(), body["delivered"].as_u64()),
        (Some(1), Some(1)),
        "{body}"
    );
    let (topic, payload) = rt
        .block_on(probe.next_message(Duration::from_secs(10)))
        .expect("the replayed message");
    assert_eq!(topic, "acme/out/unlucky");
    let v: Value = serde_json::from_slice(&payload).expect("json");
    assert_eq!(v["data"]["temperature_3"], 27.2);
    let (_, body) = http("GET", &service.url("/v1/dlq"), Some(&token), None);
    assert_eq!(body["depth"], 0, "{body}");
}

#[test]
fn sigkill_in_mid_stream_loses_no_message() {
    let broker = Mosquitto::start().expect("mosquitto");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut service = serve_with_mqtt(&data, &broker, "crashy");
    let token = create_tenant(&service, "acme");
    upload_codec(&service, &token, "lpp", tp::CAYENNE_LPP_BYTES);
    create_binding(
        &service,
        &token,
        &json!({ "name": "uplinks", "codec": "lpp",
                "sources": [{ "type": "mqtt", "topic": "acme/devices/+/up" }],
                "sinks": [{ "type": "mqtt", "topic": "acme/out/{device}" }] }),
    );
    let rt = tokio();
    let mut probe = rt
        .block_on(MqttProbe::connect(&broker.url()))
        .expect("probe");
    rt.block_on(probe.subscribe("acme/out/#"))
        .expect("subscribe");
    warm_up(&rt, &mut probe, "acme/devices/warmup/up");

    // Every 25th frame is cut short: those must end in the dead-letter queue.
    let n = 2_000usize;
    let frame = |i: usize| {
        if i.is_multiple_of(25) {
            FRAME[..3].to_vec()
        } else {
            FRAME.to_vec()
        }
    };
    let publisher = {
        let url = broker.url();
        std::thread::spawn(move || {
            let rt = tokio();
            let probe = rt.block_on(MqttProbe::connect(&url)).expect("publisher");
            rt.block_on(probe.publish_many(
                (0..n).map(|i| (format!("acme/devices/m{i}/up"), frame(i))),
                64,
            ))
            .expect("publish")
        })
    };
    // Kill the service while messages are flowing.
    let mut seen = BTreeSet::new();
    let first = rt.block_on(probe.collect(200, Duration::from_secs(30)));
    seen.extend(first.into_iter().map(|(topic, _)| topic));
    assert!(
        !seen.is_empty(),
        "nothing flowed before the kill:\n{}",
        service.stderr()
    );
    service.signal("KILL");
    assert_eq!(
        service.wait(Duration::from_secs(10)),
        None,
        "killed by a signal"
    );
    assert_eq!(publisher.join().expect("publisher"), n);

    // Restart with the same data directory and client id: the broker redelivers what was
    // not acknowledged.
    let service = serve_with_mqtt(&data, &broker, "crashy");
    let expected_dead = (0..n).filter(|i| i.is_multiple_of(25)).count();
    let delivered_target = n - expected_dead;
    let mut dead = BTreeSet::new();
    let done = eventually(Duration::from_secs(90), || {
        let batch = rt.block_on(probe.collect(10_000, Duration::from_millis(500)));
        seen.extend(batch.into_iter().map(|(topic, _)| topic));
        let (_, body) = http(
            "GET",
            &service.url("/v1/dlq?limit=1000"),
            Some(&token),
            None,
        );
        if let Some(entries) = body["dead_letters"].as_array() {
            dead.extend(
                entries
                    .iter()
                    .filter_map(|e| e["uplink"]["device_id"].as_str().map(str::to_string)),
            );
        }
        let delivered = seen.iter().filter(|t| t.starts_with("acme/out/m")).count();
        (delivered >= delivered_target && dead.len() >= expected_dead).then_some(())
    });
    let delivered: BTreeSet<usize> = seen
        .iter()
        .filter_map(|t| t.strip_prefix("acme/out/m")?.parse().ok())
        .collect();
    let dead: BTreeSet<usize> = dead
        .iter()
        .filter_map(|d| d.strip_prefix('m')?.parse().ok())
        .collect();
    let missing: Vec<usize> = (0..n)
        .filter(|i| !delivered.contains(i) && !dead.contains(i))
        .collect();
    assert!(
        done.is_some() && missing.is_empty(),
        "{} delivered, {} dead-lettered, missing {:?}\n{}",
        delivered.len(),
        dead.len(),
        &missing[..missing.len().min(20)],
        service.stderr()
    );
    // Dead letters are exactly the cut frames, and no good frame was dead-lettered.
    assert!(dead.iter().all(|i| i.is_multiple_of(25)), "{dead:?}");
}

#[test]
fn nats_subjects_in_and_out() {
    let server = NatsServer::start().expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let service = Service::start(&dir.path().join("data"), &["--nats", &server.url()]);
    let token = create_tenant(&service, "acme");
    upload_codec(&service, &token, "lpp", tp::CAYENNE_LPP_BYTES);
    create_binding(
        &service,
        &token,
        &json!({ "name": "uplinks", "codec": "lpp",
                "sources": [{ "type": "nats", "subject": "acme.up.*", "port": 1 }],
                "sinks": [{ "type": "nats", "subject": "acme.decoded.{device}", "format": "senml" }] }),
    );
    let rt = tokio();
    let mut probe = rt
        .block_on(NatsProbe::connect(&server.url()))
        .expect("probe");
    rt.block_on(probe.subscribe("acme.decoded.>"))
        .expect("subscribe");
    let got = rt.block_on(async {
        for _ in 0..50 {
            probe
                .publish("acme.up.n1", FRAME.to_vec())
                .await
                .expect("publish");
            if let Some(m) = probe.next_message(Duration::from_millis(300)).await {
                return Some(m);
            }
        }
        None
    });
    let (subject, payload) =
        got.unwrap_or_else(|| panic!("nothing on NATS:\n{}", service.stderr()));
    assert_eq!(subject, "acme.decoded.n1");
    let v: Value = serde_json::from_slice(&payload).expect("senml");
    assert_eq!(v[0]["bn"], "urn:dev:n1:");
    assert_eq!(v[1]["n"], "temperature_5");
}

#[test]
fn a_paused_binding_holds_its_messages_until_resumed_even_across_a_restart() {
    let broker = Mosquitto::start().expect("mosquitto");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let service = serve_with_mqtt(&data, &broker, "pausy");
    let token = create_tenant(&service, "acme");
    upload_codec(&service, &token, "lpp", tp::CAYENNE_LPP_BYTES);
    create_binding(
        &service,
        &token,
        &json!({ "name": "uplinks", "codec": "lpp",
                "sources": [{ "type": "mqtt", "topic": "acme/devices/+/up" }],
                "sinks": [{ "type": "mqtt", "topic": "acme/out/{device}" }] }),
    );
    let rt = tokio();
    let mut probe = rt
        .block_on(MqttProbe::connect(&broker.url()))
        .expect("probe");
    rt.block_on(probe.subscribe("acme/out/#"))
        .expect("subscribe");
    warm_up(&rt, &mut probe, "acme/devices/warmup/up");

    let (status, body) = http(
        "POST",
        &service.url("/v1/bindings/uplinks/pause"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["paused"], true);
    let n = 30;
    rt.block_on(probe.publish_many(
        (0..n).map(|i| (format!("acme/devices/p{i}/up"), FRAME.to_vec())),
        8,
    ))
    .expect("publish");
    assert!(
        rt.block_on(probe.next_message(Duration::from_secs(1)))
            .is_none(),
        "a paused binding delivered"
    );
    let (status, body) = http(
        "GET",
        &service.url("/v1/bindings/uplinks/status"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["paused"], true, "{body}");
    assert_eq!(body["worker"]["paused"], true, "{body}");
    // HTTP ingest is refused rather than left hanging.
    let (status, body) = http(
        "POST",
        &service.url("/v1/bindings/uplinks/messages"),
        Some(&token),
        Some(&json!({ "device_id": "h1", "payload_hex": "03 67 01 10" })),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "binding-paused");

    // Stop (gracefully) while paused, and start again: still paused, nothing lost.
    service.signal("TERM");
    let mut service = service;
    assert_eq!(
        service.wait(Duration::from_secs(30)),
        Some(0),
        "{}",
        service.stderr()
    );
    let service = serve_with_mqtt(&data, &broker, "pausy");
    assert!(
        rt.block_on(probe.next_message(Duration::from_secs(1)))
            .is_none()
    );
    let (_, body) = http(
        "GET",
        &service.url("/v1/bindings/uplinks/status"),
        Some(&token),
        None,
    );
    assert_eq!(body["paused"], true, "{body}");

    let (status, body) = http(
        "POST",
        &service.url("/v1/bindings/uplinks/resume"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let received = rt.block_on(probe.collect(n, Duration::from_secs(30)));
    let devices: BTreeSet<String> = received
        .iter()
        .filter_map(|(topic, _)| topic.strip_prefix("acme/out/").map(str::to_string))
        .collect();
    let expected: BTreeSet<String> = (0..n).map(|i| format!("p{i}")).collect();
    assert_eq!(devices, expected, "{}", service.stderr());
}
