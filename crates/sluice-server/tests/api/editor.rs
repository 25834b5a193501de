//! What the web editor uses: `check` (compile, vectors and a sample decode without storing),
//! versions with their source, and the editor's own files.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::json;
use sluice_server::router;
use tower::ServiceExt;

use super::{
    Harness, JS_LPP, JS_LPP_VECTORS, JS_SYNTAX_ERROR, LPP_TWO_TEMPERATURES, assert_error,
    cayenne_base64,
};

/// The JavaScript port's vectors plus one that expects a wrong value.
fn vectors_with_one_wrong() -> String {
    format!(
        "{JS_LPP_VECTORS}  - name: wrong on purpose\n    payload_hex: \"01 67 FF D7\"\n    expect: {{ temperature_1: 99 }}\n"
    )
}

#[tokio::test]
async fn check_runs_every_vector_and_a_try_and_stores_nothing() {
    let h = Harness::new();
    h.create_codec(&h.acme, "js").await;
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/js/check",
            &h.acme,
            json!({
                "js_source": JS_LPP,
                "vectors_yaml": vectors_with_one_wrong(),
                "try": { "payload_hex": LPP_TWO_TEMPERATURES, "port": 1 },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["passed"].clone(), body["failed"].clone()),
        (json!(2), json!(1)),
        "{body}"
    );
    let vectors = body["vectors"].as_array().expect("vectors");
    assert_eq!(vectors.len(), 3, "{body}");
    assert_eq!(vectors[0]["name"], "two temperatures");
    assert_eq!(vectors[0]["passed"], true);
    assert_eq!(vectors[2]["passed"], false);
    let diff = vectors[2]["diff"]
        .as_str()
        .expect("a failing vector has a diff");
    assert!(diff.contains("99") && diff.contains("-4.1"), "{diff}");
    assert_eq!(vectors[2]["actual"]["temperature_1"], json!(-4.1), "{body}");
    assert_eq!(
        body["try"]["document"]["temperature_3"],
        json!(27.2),
        "{body}"
    );
    assert!(
        body["try"]["fuel_consumed"].as_u64().unwrap_or(0) > 0,
        "{body}"
    );

    // Nothing was stored.
    let (status, module) = h.send("GET", "/v1/modules/js", Some(&h.acme), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(module["versions"], json!([]), "{module}");
}

#[tokio::test]
async fn check_reports_a_failing_try_and_bad_code_like_an_upload() {
    let h = Harness::new();
    h.create_codec(&h.acme, "js").await;
    let check = |body| h.json("POST", "/v1/modules/js/check", &h.acme, body);

    // A decode that fails in the guest is a result, with the typed failure.
    let (status, body) = check(json!({ "js_source": JS_LPP, "try": { "payload_hex": "" } })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["try"]["failure"]["failure"].is_string(), "{body}");
    assert_eq!(body["vectors"], json!([]), "{body}");

    let (status, body) = check(json!({ "js_source": JS_SYNTAX_ERROR })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "js-syntax-error");
    assert_eq!(body["line"], 4, "{body}");

    let (status, body) = check(json!({ "js_source": JS_LPP, "vectors_yaml": "vectors: [" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "invalid-vectors");

    let (status, body) =
        check(json!({ "js_source": JS_LPP, "try": { "payload_hex": "zz" } })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "try.payload_hex", "{body}");

    let (status, body) = check(json!({ "js_source": JS_LPP, "extra": 1 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/js/check",
            &h.acme_read_only,
            json!({ "js_source": JS_LPP }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/js/check",
            &h.globex,
            json!({ "js_source": JS_LPP }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another tenant's module: {body}"
    );
}

#[tokio::test]
async fn a_version_built_from_javascript_keeps_its_source() {
    let h = Harness::new();
    h.create_codec(&h.acme, "js").await;
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/js/versions",
            &h.acme,
            json!({ "js_source": JS_LPP, "vectors_yaml": JS_LPP_VECTORS }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/js/versions",
            &h.acme,
            json!({ "component_base64": cayenne_base64() }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, v1) = h
        .send("GET", "/v1/modules/js/versions/1", Some(&h.acme), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{v1}");
    assert_eq!(v1["source"], JS_LPP);
    assert_eq!(v1["source_language"], "javascript");
    assert_eq!(v1["test_vectors_yaml"], JS_LPP_VECTORS);
    assert_eq!(v1["version"], 1);
    let (_, v2) = h
        .send("GET", "/v1/modules/js/versions/2", Some(&h.acme), None)
        .await;
    assert_eq!(
        (v2["source"].clone(), v2["source_language"].clone()),
        (json!(null), json!(null))
    );
    let (_, module) = h.send("GET", "/v1/modules/js", Some(&h.acme), None).await;
    assert_eq!(
        module["versions"][0]["source_language"], "javascript",
        "{module}"
    );

    for (uri, token, expected) in [
        ("/v1/modules/js/versions/3", &h.acme, StatusCode::NOT_FOUND),
        (
            "/v1/modules/js/versions/x",
            &h.acme,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/modules/js/versions/1",
            &h.globex,
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/modules/nope/versions/1",
            &h.acme,
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (status, body) = h.send("GET", uri, Some(token), None).await;
        assert_eq!(status, expected, "{uri}: {body}");
    }
}

async fn get_raw(h: &Harness, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let response = router(h.state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test]
async fn the_editor_is_served_without_a_token_and_only_from_this_server() {
    let h = Harness::new();
    let (status, headers, _) = get_raw(&h, "/").await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers[header::LOCATION], "/editor/");

    let (status, headers, page) = get_raw(&h, "/editor/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(page.contains("app.js"), "the page loads its script");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing from elsewhere"
    );

    for (file, kind) in [
        ("app.js", "text/javascript"),
        ("highlight.js", "text/javascript"),
        ("app.css", "text/css"),
    ] {
        let (status, headers, body) = get_raw(&h, &format!("/editor/{file}")).await;
        assert_eq!(status, StatusCode::OK, "{file}");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{file}"
        );
        assert!(!body.is_empty(), "{file}");
    }
    let (status, _, body) = get_raw(&h, "/editor/../Cargo.toml").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, body) = get_raw(&h, "/editor/secret.txt").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("not-found"), "{body}");
}

#[tokio::test]
async fn a_server_without_a_rust_builder_says_so() {
    let h = Harness::new();
    h.create_codec(&h.acme, "rs").await;
    for uri in ["/v1/modules/rs/check", "/v1/modules/rs/versions"] {
        let (status, body) = h
            .json(
                "POST",
                uri,
                &h.acme,
                json!({ "rust_source": "fn main() {}" }),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{uri}: {body}");
        assert_error(&body, "rust-builds-unavailable");
        assert_eq!(body["error"]["field"], "rust_source", "{body}");
    }
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules/rs/check",
            &h.acme,
            json!({ "rust_source": "x", "js_source": "y" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("only one of"),
        "{body}"
    );
}
