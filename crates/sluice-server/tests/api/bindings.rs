//! `/v1/bindings`: a tenant's codec and router wired to sources and sinks.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Harness, assert_error};

async fn create_router(h: &Harness, token: &str, name: &str) {
    let (status, body) = h
        .json(
            "POST",
            "/v1/modules",
            token,
            json!({ "name": name, "world": "router" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

fn uplinks_spec() -> Value {
    json!({
        "name": "uplinks",
        "codec": "lpp",
        "router": "fanout",
        "config": { "region": "eu" },
        "sources": [],
        "sinks": [{ "type": "file", "path": "out/{device}.jsonl" }]
    })
}

/// `token`'s tenant gets codec `lpp`, router `fanout` and binding `uplinks` using both.
async fn create_uplinks(h: &Harness, token: &str) -> Value {
    h.create_codec(token, "lpp").await;
    create_router(h, token, "fanout").await;
    let (status, body) = h.json("POST", "/v1/bindings", token, uplinks_spec()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test]
async fn bindings_are_created_read_listed_replaced_and_deleted() {
    let h = Harness::new();
    let created = create_uplinks(&h, &h.acme).await;
    for (member, expected) in uplinks_spec().as_object().unwrap() {
        assert_eq!(&created[member], expected, "{member}: {created}");
    }
    assert!(created.get("tenant_id").is_none(), "{created}");
    assert!(created["created_at_ms"].as_u64().unwrap() > 0, "{created}");

    let (status, listed) = h.send("GET", "/v1/bindings", Some(&h.acme), None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["bindings"], json!([created]));
    let (status, got) = h
        .send("GET", "/v1/bindings/uplinks", Some(&h.acme), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, created);

    // PUT replaces every member; `name` comes from the path.
    let (status, replaced) = h
        .json(
            "PUT",
            "/v1/bindings/uplinks",
            &h.acme,
            json!({ "codec": "lpp", "sinks": [{ "type": "file", "path": "out.jsonl" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["name"], "uplinks");
    assert_eq!(replaced["router"], Value::Null);
    assert_eq!(replaced["config"], json!({}));
    assert_eq!(replaced["sources"], json!([]));
    assert_eq!(
        replaced["sinks"],
        json!([{ "type": "file", "path": "out.jsonl" }])
    );
    assert_eq!(replaced["created_at_ms"], created["created_at_ms"]);
    assert!(replaced["updated_at_ms"].as_u64() >= created["updated_at_ms"].as_u64());

    // Giving the same name in the body is fine too.
    let (status, body) = h
        .json("PUT", "/v1/bindings/uplinks", &h.acme, uplinks_spec())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["router"], "fanout");

    let (status, body) = h
        .send("DELETE", "/v1/bindings/uplinks", Some(&h.acme), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = h
        .send("GET", "/v1/bindings/uplinks", Some(&h.acme), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "not-found");
    let (_, listed) = h.send("GET", "/v1/bindings", Some(&h.acme), None).await;
    assert_eq!(listed["bindings"], json!([]));
}

#[tokio::test]
async fn another_tenants_binding_is_not_found() {
    let h = Harness::new();
    create_uplinks(&h, &h.globex).await;
    h.create_codec(&h.acme, "lpp").await;

    let (status, body) = h
        .send("GET", "/v1/bindings/uplinks", Some(&h.acme), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, missing) = h
        .send("GET", "/v1/bindings/nothing", Some(&h.acme), None)
        .await;
    assert_eq!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .replace("uplinks", "X"),
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .replace("nothing", "X"),
        "another tenant's binding reads exactly like a missing one"
    );

    let (status, body) = h
        .json(
            "PUT",
            "/v1/bindings/uplinks",
            &h.acme,
            json!({ "codec": "lpp" }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = h
        .send("DELETE", "/v1/bindings/uplinks", Some(&h.acme), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, listed) = h.send("GET", "/v1/bindings", Some(&h.acme), None).await;
    assert_eq!(listed["bindings"], json!([]));

    let (status, body) = h
        .send("GET", "/v1/bindings/uplinks", Some(&h.globex), None)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "globex's binding is untouched: {body}"
    );
    assert_eq!(body["codec"], "lpp");
}

#[tokio::test]
async fn a_binding_cannot_use_another_tenants_module() {
    let h = Harness::new();
    h.create_codec(&h.globex, "lpp").await;
    let (status, body) = h
        .json(
            "POST",
            "/v1/bindings",
            &h.acme,
            json!({ "name": "uplinks", "codec": "lpp" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "unknown-module");
    assert_eq!(body["error"]["field"], "codec");
    assert_eq!(body["error"]["message"], "module `lpp` does not exist");
}

#[tokio::test]
async fn read_only_tokens_read_bindings_but_cannot_change_them() {
    let h = Harness::new();
    create_uplinks(&h, &h.acme).await;
    let token = &h.acme_read_only;
    for (method, uri, body) in [
        (
            "POST",
            "/v1/bindings",
            Some(json!({ "name": "b2", "codec": "lpp" })),
        ),
        (
            "PUT",
            "/v1/bindings/uplinks",
            Some(json!({ "codec": "lpp" })),
        ),
        ("DELETE", "/v1/bindings/uplinks", None),
    ] {
        let (status, answer) = h
            .send(method, uri, Some(token), body.map(|b| b.to_string()))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {answer}");
        assert_error(&answer, "forbidden");
    }
    let (status, _) = h.send("GET", "/v1/bindings", Some(token), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = h
        .send("GET", "/v1/bindings/uplinks", Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["router"], "fanout", "nothing was changed");
}

#[tokio::test]
async fn malformed_bindings_are_bad_requests_naming_the_field() {
    let h = Harness::new();
    h.create_codec(&h.acme, "lpp").await;
    for (spec, field) in [
        (
            json!({ "name": "b", "codec": "lpp", "sinks": [{ "type": "file" }, "stdout"] }),
            "sinks[1]",
        ),
        (
            json!({ "name": "b", "codec": "lpp", "sources": { "type": "mqtt" } }),
            "sources",
        ),
        (
            json!({ "name": "b", "codec": "lpp", "sinks": "stdout" }),
            "sinks",
        ),
        (
            json!({ "name": "b", "codec": "lpp", "config": { "region": 1 } }),
            "config.region",
        ),
        (json!({ "name": "b" }), "codec"),
        (json!({ "name": "b", "codec": 3 }), "codec"),
        (json!({ "name": "b", "codec": "lpp", "sink": [] }), "sink"),
        (
            json!({ "name": "b", "codec": "lpp",
                    "sources": [{ "type": "mqtt", "topic": "globex/+/up" }] }),
            "sources[0].topic",
        ),
        (
            json!({ "name": "b", "codec": "lpp",
                    "sinks": [{ "type": "mqtt", "topic": "acme/out", "qos": 2 }] }),
            "sinks[0].qos",
        ),
        (
            json!({ "name": "b", "codec": "lpp", "sinks": [{ "type": "pigeon" }] }),
            "sinks[0].type",
        ),
        (
            json!({ "name": "b", "codec": "lpp",
                    "policy": { "throttle": { "messages_per_second": -1 } } }),
            "policy.throttle.messages_per_second",
        ),
        (
            json!({ "name": "b", "codec": "lpp",
                    "policy": { "quarantine": { "failures": 0 } } }),
            "policy.quarantine.failures",
        ),
        (
            json!({ "name": "b", "codec": "lpp", "policy": { "quarantine": { "colour": 1 } } }),
            "policy.quarantine.colour",
        ),
        (json!({ "name": "a b", "codec": "lpp" }), "name"),
    ] {
        let (status, body) = h.json("POST", "/v1/bindings", &h.acme, spec.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{spec}: {body}");
        assert_error(&body, "invalid-request");
        assert_eq!(body["error"]["field"], field, "{spec}: {body}");
    }
    let (status, body) = h
        .send(
            "POST",
            "/v1/bindings",
            Some(&h.acme),
            Some("{\"name\": ".into()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The same checks guard a replacement, plus the name.
    create_router(&h, &h.acme, "fanout").await;
    let (status, _) = h
        .json("POST", "/v1/bindings", &h.acme, uplinks_spec())
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for (spec, field) in [
        (json!({ "codec": "lpp", "sinks": [[]] }), "sinks[0]"),
        (json!({ "name": "renamed", "codec": "lpp" }), "name"),
        (json!({ "name": 5, "codec": "lpp" }), "name"),
    ] {
        let (status, body) = h
            .json("PUT", "/v1/bindings/uplinks", &h.acme, spec.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{spec}: {body}");
        assert_eq!(body["error"]["field"], field, "{spec}: {body}");
    }
    let (_, body) = h
        .send("GET", "/v1/bindings/uplinks", Some(&h.acme), None)
        .await;
    assert_eq!(body["router"], "fanout", "nothing was changed");
}

#[tokio::test]
async fn module_problems_are_unprocessable_naming_codec_or_router() {
    let h = Harness::new();
    h.create_codec(&h.acme, "lpp").await;
    create_router(&h, &h.acme, "fanout").await;
    for (spec, code, field) in [
        (
            json!({ "name": "b", "codec": "ghost" }),
            "unknown-module",
            "codec",
        ),
        (
            json!({ "name": "b", "codec": "lpp", "router": "ghost" }),
            "unknown-module",
            "router",
        ),
        (
            json!({ "name": "b", "codec": "fanout" }),
            "wrong-world",
            "codec",
        ),
        (
            json!({ "name": "b", "codec": "lpp", "router": "lpp" }),
            "wrong-world",
            "router",
        ),
    ] {
        let (status, body) = h.json("POST", "/v1/bindings", &h.acme, spec.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{spec}: {body}");
        assert_error(&body, code);
        assert_eq!(body["error"]["field"], field, "{spec}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        let module = spec[field].as_str().unwrap();
        assert!(message.contains(&format!("`{module}`")), "{message}");
    }
    let (_, listed) = h.send("GET", "/v1/bindings", Some(&h.acme), None).await;
    assert_eq!(listed["bindings"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn a_duplicate_binding_is_a_conflict_and_a_missing_one_cannot_be_replaced() {
    let h = Harness::new();
    create_uplinks(&h, &h.acme).await;
    let (status, body) = h
        .json("POST", "/v1/bindings", &h.acme, uplinks_spec())
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "conflict");
    assert_eq!(body["error"]["message"], "binding `uplinks` already exists");

    let (status, body) = h
        .json(
            "PUT",
            "/v1/bindings/nothing",
            &h.acme,
            json!({ "codec": "lpp" }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "not-found");
}
