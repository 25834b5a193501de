//! The HTTP API, end to end through the router (no sockets): `router(state).oneshot(request)`.

#![allow(clippy::unwrap_used)]

// More routes' tests, in one binary so it links once.
#[path = "api/bindings.rs"]
mod bindings;
#[path = "api/dlq.rs"]
mod dlq;
#[path = "api/editor.rs"]
mod editor;
#[path = "api/tenants.rs"]
mod tenants;

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sluice_runtime::{Runtime, RuntimeConfig};
use sluice_server::{AppState, router};
use sluice_store::{Store, TokenScope};
use tower::ServiceExt;

const CAYENNE_VECTORS: &str = include_str!("../../../examples/cayenne-lpp/vectors.yaml");

/// One runtime for every test: its compile cache makes the second Cayenne upload cheap.
fn runtime() -> Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Runtime::new(RuntimeConfig {
                max_instances: 16,
                ..Default::default()
            })
            .unwrap()
        })
        .clone()
}

/// A server with tenants `acme` and `globex`, their tokens, and an admin token.
struct Harness {
    state: AppState,
    admin: String,
    acme: String,
    acme_read_only: String,
    globex: String,
}

impl Harness {
    fn new() -> Self {
        let store = Store::open_in_memory().unwrap();
        store.create_tenant("acme", "Acme").unwrap();
        store.create_tenant("globex", "Globex").unwrap();
        let (_, acme) = store
            .create_token(Some("acme"), TokenScope::Tenant)
            .unwrap();
        let (_, acme_read_only) = store
            .create_token(Some("acme"), TokenScope::ReadOnly)
            .unwrap();
        let (_, globex) = store
            .create_token(Some("globex"), TokenScope::Tenant)
            .unwrap();
        let (_, admin) = store.create_token(None, TokenScope::Admin).unwrap();
        Self {
            state: AppState::new(store, runtime()),
            admin,
            acme,
            acme_read_only,
            globex,
        }
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let response = router(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{uri}: body is not JSON ({e}): {bytes:?}"))
        };
        (status, value)
    }

    async fn json(&self, method: &str, uri: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.send(method, uri, Some(token), Some(body.to_string()))
            .await
    }

    async fn create_codec(&self, token: &str, name: &str) {
        let (status, body) = self
            .json(
                "POST",
                "/v1/modules",
                token,
                json!({ "name": name, "world": "codec" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Creates `name`, uploads Cayenne LPP with its vectors and activates version 1.
    async fn deploy_cayenne(&self, token: &str, name: &str) {
        self.create_codec(token, name).await;
        let (status, body) = self
            .json(
                "POST",
                &format!("/v1/modules/{name}/versions"),
                token,
                json!({ "component_base64": cayenne_base64(), "vectors_yaml": CAYENNE_VECTORS }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["version"], 1);
        let (status, body) = self
            .send(
                "POST",
                &format!("/v1/modules/{name}/versions/1/activate"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

fn cayenne_base64() -> String {
    BASE64.encode(std::fs::read(sluice_test_programs::CAYENNE_LPP).unwrap())
}

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

const LPP_TWO_TEMPERATURES: &str = "03 67 01 10 05 67 00 FF";

#[tokio::test]
async fn upload_activate_and_decode_cayenne() {
    let h = Harness::new();
    h.deploy_cayenne(&h.acme, "lpp").await;

    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/lpp/decode",
            &h.acme,
            json!({ "payload_hex": LPP_TWO_TEMPERATURES, "port": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["document"]["temperature_3"], json!(27.2));
    assert_eq!(body["document"]["temperature_5"], json!(25.5));
    assert!(body["fuel_consumed"].as_u64().unwrap() > 0, "{body}");
    assert!(body["logs"].is_array(), "{body}");

    let (status, body) = h.send("GET", "/v1/modules/lpp", Some(&h.acme), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active_version"], 1);
    assert_eq!(body["world"], "codec");
    assert_eq!(body["versions"].as_array().unwrap().len(), 1);

    let (status, body) = h.send("GET", "/v1/modules", Some(&h.acme), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["modules"][0]["name"], "lpp");
}

#[tokio::test]
async fn payload_base64_decodes_too() {
    let h = Harness::new();
    h.deploy_cayenne(&h.acme, "lpp").await;
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/lpp/decode",
            &h.acme,
            json!({ "payload_base64": "A2cBEAVnAP8=" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["document"]["temperature_3"], json!(27.2));
}

#[tokio::test]
async fn duplicate_module_is_a_conflict() {
    let h = Harness::new();
    h.create_codec(&h.acme, "lpp").await;
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules",
            &h.acme,
            json!({ "name": "lpp", "world": "codec" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "conflict");
}

#[tokio::test]
async fn upload_with_a_failing_vector_is_refused_with_its_diff() {
    let h = Harness::new();
    h.create_codec(&h.acme, "lpp").await;
    let wrong = CAYENNE_VECTORS.replacen(
        "expect: { temperature_3: 27.2, temperature_5: 25.5 }",
        "expect: { temperature_3: 99.9, temperature_5: 25.5 }",
        1,
    );
    assert_ne!(wrong, CAYENNE_VECTORS);
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/lpp/versions",
            &h.acme,
            json!({ "component_base64": cayenne_base64(), "vectors_yaml": wrong }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "vectors-failed");
    let failures = body["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{body}");
    assert_eq!(
        failures[0]["name"],
        "lpp documentation example, two temperatures"
    );
    let diff = failures[0]["diff"].as_str().unwrap();
    assert!(diff.contains("99.9") && diff.contains("27.2"), "{diff}");

    let (_, module) = h.send("GET", "/v1/modules/lpp", Some(&h.acme), None).await;
    assert_eq!(module["versions"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn unparsable_vectors_are_refused_naming_the_line() {
    let h = Harness::new();
    h.create_codec(&h.acme, "lpp").await;
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/lpp/versions",
            &h.acme,
            json!({ "component_base64": cayenne_base64(), "vectors_yaml": "vectors:\n  - name: x\n    bogus: 1\n" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "invalid-vectors");
    assert_eq!(body["error"]["field"], "vectors_yaml");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("line"), "{message}");
}

#[tokio::test]
async fn garbage_bytes_are_not_webassembly() {
    let h = Harness::new();
    h.create_codec(&h.acme, "junk").await;
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/junk/versions",
            &h.acme,
            json!({ "component_base64": BASE64.encode(sluice_test_programs::garbage_bytes()) }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "invalid-component");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("not a WebAssembly binary"), "{message}");
}

#[tokio::test]
async fn bad_base64_is_a_bad_request_naming_the_field() {
    let h = Harness::new();
    h.create_codec(&h.acme, "lpp").await;
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/lpp/versions",
            &h.acme,
            json!({ "component_base64": "not base64 at all!" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "component_base64", "{body}");
}

#[tokio::test]
async fn malformed_json_is_a_bad_request() {
    let h = Harness::new();
    let (status, body) = h
        .send(
            "POST",
            "/v1/modules",
            Some(&h.acme),
            Some("{\"name\": ".into()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid-request");
}

#[tokio::test]
async fn missing_and_mistyped_fields_are_named() {
    let h = Harness::new();
    let (status, body) = h
        .json("POST", "/v1/modules", &h.acme, json!({ "name": "lpp" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "world", "{body}");

    let (status, body) = h
        .json(
            "POST",
            "/v1/modules",
            &h.acme,
            json!({ "name": "lpp", "world": "toaster" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "world", "{body}");

    h.create_codec(&h.acme, "lpp").await;
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/lpp/versions",
            &h.acme,
            json!({ "policy": {} }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "component_base64", "{body}");

    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/lpp/versions",
            &h.acme,
            json!({ "component_base64": "", "policy": { "limits": { "fuel_per_call": "lots" } } }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error"]["field"], "policy.limits.fuel_per_call",
        "{body}"
    );
}

#[tokio::test]
async fn requests_without_a_valid_token_are_unauthorized() {
    let h = Harness::new();
    let (status, body) = h.send("GET", "/v1/modules", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_error(&body, "unauthorized");

    let (status, body) = h
        .send("GET", "/v1/modules", Some("slc_nonsense"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let (status, _) = h.send("GET", "/livez", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn another_tenants_module_is_not_found() {
    let h = Harness::new();
    h.deploy_cayenne(&h.globex, "lpp").await;

    let (status, body) = h.send("GET", "/v1/modules/lpp", Some(&h.acme), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "not-found");
    let (_, missing) = h
        .send("GET", "/v1/modules/nothing", Some(&h.acme), None)
        .await;
    assert_eq!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .replace("lpp", "X"),
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .replace("nothing", "X"),
        "another tenant's module reads exactly like a missing one"
    );

    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/lpp/versions",
            &h.acme,
            json!({ "component_base64": cayenne_base64() }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, body) = h
        .send(
            "POST",
            "/v1/modules/lpp/versions/1/activate",
            Some(&h.acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/lpp/decode",
            &h.acme,
            json!({ "payload_hex": LPP_TWO_TEMPERATURES }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (_, list) = h.send("GET", "/v1/modules", Some(&h.acme), None).await;
    assert_eq!(list["modules"], json!([]));
}

#[tokio::test]
async fn read_only_token_cannot_upload() {
    let h = Harness::new();
    h.create_codec(&h.acme, "lpp").await;
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/lpp/versions",
            &h.acme_read_only,
            json!({ "component_base64": cayenne_base64() }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_error(&body, "forbidden");

    let (status, _) = h
        .send("GET", "/v1/modules/lpp", Some(&h.acme_read_only), None)
        .await;
    assert_eq!(status, StatusCode::OK, "a read-only token reads");
}

#[tokio::test]
async fn decode_without_an_active_version_is_a_conflict() {
    let h = Harness::new();
    h.create_codec(&h.acme, "lpp").await;
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/lpp/decode",
            &h.acme,
            json!({ "payload_hex": LPP_TWO_TEMPERATURES }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "no-active-version");
}

#[tokio::test]
async fn rollback_reactivates_the_previous_version() {
    let h = Harness::new();
    h.deploy_cayenne(&h.acme, "lpp").await;
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/lpp/versions",
            &h.acme,
            json!({ "component_base64": cayenne_base64() }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"], 2);
    let (status, _) = h
        .send(
            "POST",
            "/v1/modules/lpp/versions/2/activate",
            Some(&h.acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = h
        .send("POST", "/v1/modules/lpp/rollback", Some(&h.acme), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active_version"], 1);
    let (status, body) = h
        .send("POST", "/v1/modules/lpp/rollback", Some(&h.acme), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn infinite_loop_exhausts_fuel_and_the_server_keeps_decoding() {
    let h = Harness::new();
    h.deploy_cayenne(&h.acme, "lpp").await;
    h.create_codec(&h.acme, "spin").await;
    let component = std::fs::read(sluice_test_programs::TP_INFINITE_LOOP).unwrap();
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/spin/versions",
            &h.acme,
            json!({
                "component_base64": BASE64.encode(component),
                "policy": { "limits": { "fuel_per_call": 5_000_000 } }
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = h
        .send(
            "POST",
            "/v1/modules/spin/versions/1/activate",
            Some(&h.acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/spin/decode",
            &h.acme,
            json!({ "payload_hex": "00" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "fuel-exhausted");
    assert_eq!(body["failure"]["failure"], "fuel-exhausted", "{body}");
    assert_eq!(body["failure"]["limit_fuel"], 5_000_000, "{body}");

    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/lpp/decode",
            &h.acme,
            json!({ "payload_hex": LPP_TWO_TEMPERATURES }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["document"]["temperature_3"], json!(27.2));
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let h = Harness::new();
    let (status, doc) = h.send("GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (method, path) in [
        ("get", "/livez"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
        ("post", "/v1/bindings/{name}/messages"),
        ("get", "/v1/bindings/{name}/recent"),
        ("post", "/v1/bindings/{name}/pause"),
        ("post", "/v1/bindings/{name}/resume"),
        ("get", "/v1/bindings/{name}/status"),
        ("post", "/v1/dlq/replay"),
        ("get", "/v1/modules"),
        ("post", "/v1/modules"),
        ("get", "/v1/modules/{name}"),
        ("post", "/v1/modules/{name}/versions"),
        ("get", "/v1/modules/{name}/versions/{version}"),
        ("post", "/v1/modules/{name}/check"),
        ("post", "/v1/modules/{name}/versions/{version}/activate"),
        ("post", "/v1/modules/{name}/rollback"),
        ("post", "/v1/modules/{name}/decode"),
        ("get", "/v1/bindings"),
        ("post", "/v1/bindings"),
        ("get", "/v1/bindings/{name}"),
        ("put", "/v1/bindings/{name}"),
        ("delete", "/v1/bindings/{name}"),
        ("get", "/v1/dlq"),
        ("post", "/v1/dlq/purge"),
        ("get", "/v1/dlq/{id}"),
        ("delete", "/v1/dlq/{id}"),
        ("get", "/v1/tenants"),
        ("post", "/v1/tenants"),
        ("get", "/v1/tenants/{tenant}"),
        ("get", "/v1/tenants/{tenant}/tokens"),
        ("post", "/v1/tenants/{tenant}/tokens"),
        ("post", "/v1/tenants/{tenant}/tokens/{id}/revoke"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is missing from openapi.json"
        );
    }
}

#[tokio::test]
async fn ingest_checks_each_message_and_needs_a_pipeline() {
    let h = Harness::new();
    for (body, field) in [
        (
            json!({ "device_id": "a/b", "payload_hex": "00" }),
            "device_id",
        ),
        (json!({ "device_id": "d1" }), "payload_hex"),
        (
            json!({ "device_id": "d1", "payload_hex": "zz" }),
            "payload_hex",
        ),
        (
            json!({ "messages": [{ "device_id": "d1", "payload_hex": "00" },
                                 { "device_id": "d2", "payload_base64": "!!" }] }),
            "messages[1].payload_base64",
        ),
    ] {
        let (status, answer) = h
            .send(
                "POST",
                "/v1/bindings/b/messages",
                Some(&h.acme),
                Some(body.to_string()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    // Well-formed, but this router serves the API alone.
    let (status, answer) = h
        .send(
            "POST",
            "/v1/bindings/b/messages",
            Some(&h.acme),
            Some(json!({ "device_id": "d1", "payload_hex": "00" }).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"]["code"], "no-pipeline");
    let (status, _) = h
        .send(
            "POST",
            "/v1/bindings/b/messages",
            Some(&h.acme_read_only),
            Some(json!({ "device_id": "d1", "payload_hex": "00" }).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, answer) = h.send("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

const JS_LPP: &str = include_str!("../../../js/fixtures/cayenne-lpp.js");
const JS_SYNTAX_ERROR: &str = include_str!("../../../js/fixtures/syntax-error.js");
/// Decode vectors the JavaScript port shares with the Rust example (its error kinds and
/// encoder differ).
const JS_LPP_VECTORS: &str = r#"
vectors:
  - name: two temperatures
    payload_hex: "03 67 01 10 05 67 00 FF"
    expect: { temperature_3: 27.2, temperature_5: 25.5 }
  - name: gps
    payload_hex: "01 88 06 76 5f f2 96 0a 00 03 e8"
    expect: { gps_1: { latitude: 42.3519, longitude: -87.9094, altitude: 10 } }
"#;

#[tokio::test]
async fn a_javascript_codec_is_compiled_tested_and_decodes() {
    let h = Harness::new();
    h.create_codec(&h.acme, "lpp-js").await;
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/lpp-js/versions",
            &h.acme,
            json!({ "js_source": JS_LPP, "vectors_yaml": JS_LPP_VECTORS }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = h
        .send(
            "POST",
            "/v1/modules/lpp-js/versions/1/activate",
            Some(&h.acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/lpp-js/decode",
            &h.acme,
            json!({ "payload_hex": LPP_TWO_TEMPERATURES, "port": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["document"]["temperature_3"], json!(27.2), "{body}");
    assert_eq!(body["document"]["temperature_5"], json!(25.5), "{body}");
}

#[tokio::test]
async fn javascript_uploads_name_what_is_wrong() {
    let h = Harness::new();
    h.create_codec(&h.acme, "js").await;
    let upload = |body: Value| h.json("POST", "/v1/modules/js/versions", &h.acme, body);

    let (status, body) = upload(json!({ "js_source": JS_SYNTAX_ERROR })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "js-syntax-error");
    assert_eq!(body["error"]["field"], "js_source", "{body}");
    assert_eq!(body["line"], 4, "{body}");
    assert!(body["column"].as_u64().unwrap_or(0) > 0, "{body}");

    let (status, body) = upload(json!({ "js_source": "var x = 1;" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "js-build-failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("decodeUplink"),
        "{body}"
    );

    let (status, body) =
        upload(json!({ "js_source": JS_LPP, "component_base64": cayenne_base64() })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "js_source", "{body}");

    let (status, body) = h
        .json(
            "POST",
            "/v1/modules",
            &h.acme,
            json!({ "name": "rt", "world": "router" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/rt/versions",
            &h.acme,
            json!({ "js_source": JS_LPP }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "wrong-world");
    assert_eq!(body["error"]["field"], "js_source", "{body}");
}
