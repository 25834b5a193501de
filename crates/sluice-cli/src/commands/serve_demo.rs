//! The demo of `sluice serve --demo`: a `demo` tenant with the example codecs and router, a
//! JavaScript codec to open in the web editor, three bindings, and simulated devices feeding
//! them.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use sluice_connectors::mqtt::MqttSettings;
use sluice_pipeline::Pipeline;
use sluice_store::{
    BindingSpec, NewVersion, Source, SourceLanguage, Store, StoreError, TokenScope,
};
use sluice_types::{ModulePolicy, Uplink, World};

/// The demo's tenant.
pub const TENANT: &str = "demo";

/// What the demo set up.
#[derive(Debug)]
pub struct Demo {
    /// The file holding the demo tenant's API token.
    pub token_path: std::path::PathBuf,
}

struct DemoModule {
    name: &'static str,
    world: World,
    bytes: &'static [u8],
    vectors: &'static str,
}

const MODULES: &[DemoModule] = &[
    DemoModule {
        name: "cayenne-lpp",
        world: World::Codec,
        bytes: sluice_test_programs::CAYENNE_LPP_BYTES,
        vectors: include_str!("../../../../examples/cayenne-lpp/vectors.yaml"),
    },
    DemoModule {
        name: "bitpacked",
        world: World::Codec,
        bytes: sluice_test_programs::BITPACKED_BYTES,
        vectors: include_str!("../../../../examples/bitpacked/vectors.yaml"),
    },
    DemoModule {
        name: "threshold",
        world: World::Router,
        bytes: sluice_test_programs::THRESHOLD_ROUTER_BYTES,
        vectors: include_str!("../../../../examples/threshold-router/vectors.yaml"),
    },
];

/// The demo's JavaScript codec: Cayenne LPP as a TS013 payload formatter, built here (the web
/// editor opens its source).
const JS_CODEC: &str = "lpp-js";
const JS_SOURCE: &str = include_str!("../../../../js/fixtures/cayenne-lpp.js");
const JS_VECTORS: &str = r#"vectors:
  - name: temperature and humidity
    payload_hex: "03 67 00 D2 04 68 64"
    expect: { temperature_3: 21, humidity_4: 50 }
  - name: two temperatures
    payload_hex: "03 67 01 10 05 67 00 FF"
    expect: { temperature_3: 27.2, temperature_5: 25.5 }
"#;

/// Creates (or brings up to date) the demo tenant, modules and bindings. Safe to run on a
/// data directory that already has them.
pub fn setup(store: &Store, data_dir: &Path, with_mqtt: bool) -> anyhow::Result<Demo> {
    match store.create_tenant(TENANT, "Demo tenant") {
        Ok(_) | Err(StoreError::Conflict { .. }) => {}
        Err(e) => return Err(e).context("creating the demo tenant"),
    }
    for module in MODULES {
        let policy = ModulePolicy::default();
        let version = NewVersion {
            test_vectors_yaml: Some(module.vectors),
            ..NewVersion::new(module.bytes, &policy)
        };
        store
            .deploy(TENANT, module.name, module.world, version)
            .with_context(|| format!("deploying module {}", module.name))?;
    }
    setup_js_codec(store)?;
    let mqtt_source = |topic: &str| {
        if with_mqtt {
            serde_json::json!([{ "type": "mqtt", "topic": topic }])
        } else {
            serde_json::json!([])
        }
    };
    let mut lpp_sinks = vec![
        serde_json::json!({ "type": "file", "name": "decoded", "path": "lpp.jsonl" }),
        serde_json::json!({ "type": "file", "name": "senml", "path": "lpp.senml.jsonl", "format": "senml" }),
    ];
    let mut thermostat_sinks = vec![
        serde_json::json!({ "type": "file", "name": "storage", "path": "thermostat.jsonl" }),
        serde_json::json!({ "type": "file", "name": "alerts", "path": "alerts.jsonl" }),
        serde_json::json!({ "type": "file", "name": "analytics", "path": "analytics.lp", "format": "influx" }),
    ];
    if with_mqtt {
        lpp_sinks.push(
            serde_json::json!({ "type": "mqtt", "name": "mqtt", "topic": "demo/decoded/{device}" }),
        );
        thermostat_sinks.push(
            serde_json::json!({ "type": "mqtt", "name": "mqtt", "topic": "demo/thermostat/{device}" }),
        );
    }
    let bindings = [
        BindingSpec {
            name: "lpp".into(),
            codec: "cayenne-lpp".into(),
            router: None,
            config: Default::default(),
            sources: mqtt_source("demo/devices/+/lpp"),
            sinks: serde_json::Value::Array(lpp_sinks),
            policy: serde_json::json!({}),
        },
        BindingSpec {
            name: JS_CODEC.into(),
            codec: JS_CODEC.into(),
            router: None,
            config: Default::default(),
            sources: mqtt_source("demo/devices/+/lpp-js"),
            sinks: serde_json::json!([{ "type": "file", "name": "decoded", "path": "lpp-js.jsonl" }]),
            policy: serde_json::json!({}),
        },
        BindingSpec {
            name: "thermostat".into(),
            codec: "bitpacked".into(),
            router: Some("threshold".into()),
            config: [("temperature_max".to_string(), "25".to_string())].into(),
            sources: mqtt_source("demo/devices/+/thermostat"),
            sinks: serde_json::Value::Array(thermostat_sinks),
            policy: serde_json::json!({}),
        },
    ];
    for spec in &bindings {
        sluice_connectors::parse_binding_io(TENANT, &spec.name, &spec.sources, &spec.sinks)
            .with_context(|| format!("demo binding {}", spec.name))?;
        let exists = store.get_binding(TENANT, &spec.name)?.is_some();
        if exists {
            store.update_binding(TENANT, spec)?;
        } else {
            store.create_binding(TENANT, spec)?;
        }
    }
    let (_, token) = store.create_token(Some(TENANT), TokenScope::Tenant)?;
    let token_path = data_dir.join("demo-token");
    super::serve::write_secret(&token_path, &token)?;
    Ok(Demo { token_path })
}

/// Builds and activates the JavaScript codec, unless a version of it exists already (the
/// build takes a few seconds).
fn setup_js_codec(store: &Store) -> anyhow::Result<()> {
    let exists = store.get_module(TENANT, JS_CODEC)?.is_some();
    if exists && !store.list_versions(TENANT, JS_CODEC)?.is_empty() {
        return Ok(());
    }
    let component =
        sluice_js::build_js_codec(JS_SOURCE).context("building the demo's JavaScript codec")?;
    let policy = ModulePolicy::default();
    let version = NewVersion {
        test_vectors_yaml: Some(JS_VECTORS),
        source: Some(Source {
            language: SourceLanguage::JavaScript,
            text: JS_SOURCE,
        }),
        ..NewVersion::new(&component, &policy)
    };
    store
        .deploy(TENANT, JS_CODEC, World::Codec, version)
        .context("deploying the demo's JavaScript codec")?;
    Ok(())
}

/// Tells the user where to look.
pub fn print_banner(demo: &Demo, bound: SocketAddr, data_dir: &Path, mqtt: Option<&MqttSettings>) {
    let token_path = &demo.token_path;
    let base = format!("http://{bound}");
    let sinks = data_dir.join("sinks").join(TENANT);
    println!(
        "
Sluice demo is running: tenant `{TENANT}`, codecs cayenne-lpp, bitpacked and lpp-js
(JavaScript), router threshold. Simulated devices feed bindings `lpp`, `lpp-js` and
`thermostat`; every 10th LPP frame is cut short and lands in the dead-letter queue with its
reason.

  Web editor: {base}/editor/  (log in with the token in {token})

  export SLUICE_TOKEN=$(cat {token})
  curl -s -H \"Authorization: Bearer $SLUICE_TOKEN\" {base}/v1/bindings/lpp/recent
  curl -s -H \"Authorization: Bearer $SLUICE_TOKEN\" {base}/v1/dlq
  curl -s -X POST -H \"Authorization: Bearer $SLUICE_TOKEN\" {base}/v1/bindings/lpp/messages \\
       -d '{{\"device_id\": \"my-sensor\", \"port\": 1, \"payload_hex\": \"03 67 01 10 05 67 00 FF\"}}'
  curl -s {base}/metrics
  tail -f {sinks}/lpp.jsonl           decoded documents (also lpp.senml.jsonl, thermostat.jsonl,
                                      alerts.jsonl, analytics.lp)
  API description: {base}/openapi.json",
        token = token_path.display(),
        sinks = sinks.display(),
    );
    if let Some(mqtt) = mqtt {
        println!(
            "  MQTT ({url}): publish frames to demo/devices/<device>/lpp, read demo/decoded/<device>",
            url = mqtt.url
        );
    }
    println!("\nStop with Ctrl-C: queued and in-flight messages are settled first.");
}

/// A Cayenne LPP frame: temperature (channel 3) and humidity (channel 4).
fn lpp_frame(tick: u64, device: u64) -> Vec<u8> {
    let temperature = 180 + ((tick * 7 + device * 13) % 90) as i16; // 18.0 .. 26.9 °C
    let humidity = 80 + ((tick * 3 + device * 5) % 60) as u8; // 40 .. 69.5 %
    let t = temperature.to_be_bytes();
    vec![0x03, 0x67, t[0], t[1], 0x04, 0x68, humidity]
}

/// Bit-packed thermostat frames from the example's vectors: a mild and a hot reading.
const THERMOSTAT_FRAMES: &[&[u8]] = &[
    &[0x10, 0xD7, 0x5B, 0x4A, 0x04, 0x90],
    &[0x17, 0xFF, 0xC9, 0xFF, 0xD4, 0x88],
];

/// Feeds the demo bindings at `rate` messages per second until aborted.
pub fn spawn_feed(pipeline: Pipeline, _demo: &Demo, rate: f64) -> tokio::task::JoinHandle<()> {
    let period = Duration::from_secs_f64(1.0 / rate.clamp(0.1, 10_000.0));
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        let mut tick = 0u64;
        loop {
            interval.tick().await;
            tick += 1;
            let (binding, uplink) = if tick % 4 == 1 {
                let device = tick % 2;
                (
                    JS_CODEC,
                    Uplink::new(format!("js-sensor-{device}"), 1, lpp_frame(tick, device)),
                )
            } else if tick.is_multiple_of(4) {
                let device = tick % 2;
                let frame = THERMOSTAT_FRAMES[(tick / 4 % 2) as usize];
                (
                    "thermostat",
                    Uplink::new(format!("thermostat-{device}"), 2, frame.to_vec()),
                )
            } else {
                let device = tick % 3;
                let mut frame = lpp_frame(tick, device);
                if tick.is_multiple_of(10) {
                    frame.truncate(3);
                }
                ("lpp", Uplink::new(format!("sensor-{device}"), 1, frame))
            };
            let pipeline = pipeline.clone();
            tokio::spawn(async move {
                // Outcomes are logged and counted by the pipeline.
                if let Err(e) = pipeline.process(TENANT, binding, uplink).await {
                    tracing::warn!(binding, error = %e, "demo frame not processed");
                }
            });
        }
    })
}
