//! The pipeline end to end on a real store, runtime and sinks (files, and a webhook that
//! refuses), without brokers.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use sluice_connectors::SinkContext;
use sluice_pipeline::{Metrics, Outcome, Pipeline, PipelineConfig};
use sluice_runtime::{Runtime, RuntimeConfig};
use sluice_store::{BindingSpec, NewVersion, Store};
use sluice_test_programs as tp;
use sluice_types::{ModulePolicy, Uplink, World};

struct Fixture {
    pipeline: Pipeline,
    store: Store,
    sink_dir: PathBuf,
    _dir: tempfile::TempDir,
}

fn upload(store: &Store, tenant: &str, module: &str, bytes: &[u8]) -> u32 {
    let upload = store
        .add_version(
            tenant,
            module,
            NewVersion {
                component: bytes,
                policy: &ModulePolicy::default(),
                test_vectors_yaml: None,
                source: None,
            },
        )
        .expect("version");
    store
        .activate(tenant, module, upload.version.version)
        .expect("activate");
    upload.version.version
}

async fn fixture(codec: &str, router: Option<&str>, sinks: serde_json::Value) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("sluice.db")).expect("store");
    store.create_tenant("acme", "Acme").expect("tenant");
    store
        .create_module("acme", "codec", World::Codec)
        .expect("module");
    upload(
        &store,
        "acme",
        "codec",
        &std::fs::read(codec).expect("codec bytes"),
    );
    if let Some(router) = router {
        store
            .create_module("acme", "router", World::Router)
            .expect("router");
        upload(
            &store,
            "acme",
            "router",
            &std::fs::read(router).expect("router bytes"),
        );
    }
    store
        .create_binding(
            "acme",
            &BindingSpec {
                name: "farm".into(),
                codec: "codec".into(),
                router: router.map(|_| "router".to_string()),
                config: Default::default(),
                sources: json!([]),
                sinks,
                policy: json!({}),
            },
        )
        .expect("binding");
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let sink_dir = dir.path().join("sinks");
    let pipeline = Pipeline::new(
        store.clone(),
        runtime,
        SinkContext::new(&sink_dir),
        Metrics::new(),
        PipelineConfig::default(),
    );
    pipeline.refresh().await.expect("refresh");
    Fixture {
        pipeline,
        store,
        sink_dir,
        _dir: dir,
    }
}

fn lpp(device: &str) -> Uplink {
    Uplink::new(
        device,
        1,
        vec![0x03, 0x67, 0x01, 0x10, 0x05, 0x67, 0x00, 0xFF],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoded_documents_reach_every_sink_in_its_format() {
    let f = fixture(
        tp::CAYENNE_LPP,
        None,
        json!([
            { "type": "file", "name": "json", "path": "decoded.jsonl" },
            { "type": "file", "name": "influx", "path": "decoded.lp", "format": "influx" }
        ]),
    )
    .await;
    for device in ["d1", "d2", "d3"] {
        let outcome = f
            .pipeline
            .process("acme", "farm", lpp(device))
            .await
            .expect("process");
        assert_eq!(
            outcome,
            Outcome::Delivered {
                outputs: vec!["json".into(), "influx".into()]
            }
        );
    }
    let json_lines =
        std::fs::read_to_string(f.sink_dir.join("acme/decoded.jsonl")).expect("json file");
    let lines: Vec<serde_json::Value> = json_lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["device_id"], "d2");
    assert_eq!(
        lines[1]["data"],
        json!({ "temperature_3": 27.2, "temperature_5": 25.5 })
    );
    let influx = std::fs::read_to_string(f.sink_dir.join("acme/decoded.lp")).expect("influx file");
    assert_eq!(influx.lines().count(), 3);
    assert!(
        influx.starts_with("farm,device=d1,tenant=acme temperature_3=27.2,temperature_5=25.5 "),
        "{influx}"
    );
    let metrics = f.pipeline.metrics().encode();
    assert!(
        metrics.contains(
            r#"sluice_messages_total{tenant="acme",binding="farm",outcome="delivered"} 3"#
        ),
        "{metrics}"
    );
    let recent = f.pipeline.recent("acme", "farm");
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[1].device_id, "d2");
    assert_eq!(
        recent[1].document,
        Some(json!({ "temperature_3": 27.2, "temperature_5": 25.5 })),
        "the live view shows the decoded document"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_codec_dead_letters_and_replay_after_a_fix_delivers() {
    let f = fixture(
        tp::TP_PANIC,
        None,
        json!([{ "type": "file", "path": "out.jsonl" }]),
    )
    .await;
    let mut ids = Vec::new();
    for device in ["d1", "d2"] {
        match f
            .pipeline
            .process("acme", "farm", lpp(device))
            .await
            .expect("process")
        {
            Outcome::DeadLettered { id, kind, reason } => {
                assert_eq!(kind, "trap");
                assert!(reason.contains("codec panicked on purpose"), "{reason}");
                ids.push(id);
            }
            other => panic!("expected a dead letter, got {other:?}"),
        }
    }
    assert_eq!(f.store.dlq_depth("acme", Some("farm")).expect("depth"), 2);
    let entry = f
        .store
        .dlq_get("acme", ids[0])
        .expect("get")
        .expect("entry");
    assert_eq!(entry.uplink.device_id, "d1");
    assert_eq!(entry.attempts, 1);

    // The good message after a trap is unharmed: replaying before the fix fails again
    // and the new entry replaces the old one.
    let again = f.pipeline.replay("acme", &ids[..1]).await;
    assert!(
        matches!(again[0].outcome, Some(Outcome::DeadLettered { .. })),
        "{again:?}"
    );
    assert_eq!(f.store.dlq_depth("acme", Some("farm")).expect("depth"), 2);

    // Fix: a new version of the codec, activated; replay everything.
    upload(&f.store, "acme", "codec", tp::CAYENNE_LPP_BYTES);
    f.pipeline.refresh().await.expect("refresh");
    let entries = f
        .store
        .dlq_list("acme", Some("farm"), 100, None)
        .expect("list");
    let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
    let replayed = f.pipeline.replay("acme", &ids).await;
    assert_eq!(replayed.len(), 2);
    for r in &replayed {
        assert!(
            matches!(r.outcome, Some(Outcome::Delivered { .. })),
            "{r:?}"
        );
        assert_eq!(r.error, None);
    }
    assert_eq!(f.store.dlq_depth("acme", None).expect("depth"), 0);
    let out = std::fs::read_to_string(f.sink_dir.join("acme/out.jsonl")).expect("file");
    assert_eq!(out.lines().count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_keeps_failing_dead_letters_with_the_attempts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let f = fixture(
        tp::CAYENNE_LPP,
        None,
        json!([{ "type": "webhook", "url": format!("http://127.0.0.1:{port}/in"),
                 "retry": { "retries": 2, "backoff_ms": 5 } }]),
    )
    .await;
    let outcome = f
        .pipeline
        .process("acme", "farm", lpp("d1"))
        .await
        .expect("process");
    let Outcome::DeadLettered { id, kind, reason } = outcome else {
        panic!("expected a dead letter, got {outcome:?}")
    };
    assert_eq!(kind, "sink-failed");
    assert!(reason.contains("after 3 attempt(s)"), "{reason}");
    let entry = f.store.dlq_get("acme", id).expect("get").expect("entry");
    assert_eq!(entry.failure_kind, "sink-failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_decisions_pick_outputs_and_an_unknown_output_is_a_typed_failure() {
    // The threshold router: `storage` always, `analytics` unless the site is `lab`, and
    // `alerts` above 30 °C. This binding has no `alerts` sink.
    let f = fixture(
        tp::BITPACKED,
        Some(tp::THRESHOLD_ROUTER),
        json!([{ "type": "file", "name": "storage", "path": "storage.jsonl" },
               { "type": "file", "name": "analytics", "path": "analytics.jsonl" }]),
    )
    .await;
    let cool = || Uplink::new("d1", 1, vec![0x10, 0xD7, 0x5B, 0x4A, 0x04, 0x90]);
    let outcome = f
        .pipeline
        .process("acme", "farm", cool())
        .await
        .expect("process");
    assert_eq!(
        outcome,
        Outcome::Delivered {
            outputs: vec!["storage".into(), "analytics".into()]
        }
    );
    let mut lab = cool();
    lab.metadata.push(("site".into(), "lab".into()));
    let outcome = f
        .pipeline
        .process("acme", "farm", lab)
        .await
        .expect("process");
    assert_eq!(
        outcome,
        Outcome::Delivered {
            outputs: vec!["storage".into()]
        }
    );

    let hot = Uplink::new("d1", 1, vec![0x17, 0xFF, 0xC9, 0xFF, 0xD4, 0x88]);
    let outcome = f
        .pipeline
        .process("acme", "farm", hot)
        .await
        .expect("process");
    let Outcome::DeadLettered { kind, reason, .. } = outcome else {
        panic!("expected a dead letter, got {outcome:?}")
    };
    assert_eq!(kind, "invalid-output");
    assert!(reason.contains("`alerts`"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_bindings_are_refused_and_shutdown_drains() {
    let f = fixture(
        tp::CAYENNE_LPP,
        None,
        json!([{ "type": "file", "path": "out.jsonl" }]),
    )
    .await;
    let err = f
        .pipeline
        .process("acme", "nope", lpp("d1"))
        .await
        .expect_err("unknown");
    assert_eq!(err.to_string(), "tenant `acme` has no binding `nope`");
    let err = f
        .pipeline
        .process("globex", "farm", lpp("d1"))
        .await
        .expect_err("other tenant");
    assert_eq!(err.to_string(), "tenant `globex` has no binding `farm`");

    let mut waiting = Vec::new();
    for i in 0..50 {
        let p = f.pipeline.clone();
        waiting.push(tokio::spawn(async move {
            p.process("acme", "farm", lpp(&format!("d{i}"))).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    f.pipeline.shutdown(Duration::from_secs(30)).await;
    let mut settled = 0;
    for w in waiting {
        if let Ok(Ok(Outcome::Delivered { .. })) = w.await {
            settled += 1;
        }
    }
    let lines = std::fs::read_to_string(f.sink_dir.join("acme/out.jsonl")).unwrap_or_default();
    // Whatever was accepted before shutdown was settled, and nothing was settled twice.
    assert_eq!(lines.lines().count(), settled);
    assert!(
        f.pipeline
            .process("acme", "farm", lpp("late"))
            .await
            .is_err()
    );
}

/// A tiny HTTP server on a free port: answers the first `failures` requests with 503, then
/// 200, and records every body it was sent.
fn flaky_webhook(failures: usize) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let status = if i < failures {
                "503 Service Unavailable"
            } else {
                seen.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&body).into_owned());
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (port, bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_fails_twice_is_retried_and_delivered() {
    let (port, bodies) = flaky_webhook(2);
    let f = fixture(
        tp::CAYENNE_LPP,
        None,
        json!([{ "type": "webhook", "name": "hook", "format": "senml",
                 "url": format!("http://127.0.0.1:{port}/in"),
                 "retry": { "retries": 3, "backoff_ms": 10 } }]),
    )
    .await;
    let outcome = f
        .pipeline
        .process("acme", "farm", lpp("d7"))
        .await
        .expect("process");
    assert_eq!(
        outcome,
        Outcome::Delivered {
            outputs: vec!["hook".into()]
        }
    );
    let bodies = bodies.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 1);
    let senml: serde_json::Value = serde_json::from_str(&bodies[0]).expect("senml");
    assert_eq!(senml[0]["bn"], "urn:dev:d7:");
    let metrics = f.pipeline.metrics().encode();
    assert!(
        metrics.contains(r#"sluice_sink_retries_total{tenant="acme",binding="farm"} 2"#),
        "{metrics}"
    );
}
