//! `/v1/tenants`: tenants and tokens, for admin tokens only.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Harness, assert_error};

/// Creates a token of `scope` for `tenant` with the admin token; answers the create body.
async fn create_token(h: &Harness, tenant: &str, scope: &str) -> Value {
    let (status, body) = h
        .json(
            "POST",
            &format!("/v1/tenants/{tenant}/tokens"),
            &h.admin,
            json!({ "scope": scope }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test]
async fn an_admin_creates_lists_and_reads_tenants() {
    let h = Harness::new();
    let (status, body) = h
        .json(
            "POST",
            "/v1/tenants",
            &h.admin,
            json!({ "id": "initech", "name": "Initech" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], "initech");
    assert_eq!(body["name"], "Initech");
    assert!(body["created_at_ms"].as_u64().unwrap() > 0, "{body}");

    let (status, body) = h.send("GET", "/v1/tenants", Some(&h.admin), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "globex", "initech"]);

    let (status, body) = h
        .send("GET", "/v1/tenants/initech", Some(&h.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Initech");

    let (status, body) = h
        .send("GET", "/v1/tenants/nothing", Some(&h.admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "not-found");
}

#[tokio::test]
async fn bad_and_duplicate_tenants_are_refused_naming_the_field() {
    let h = Harness::new();
    let (status, body) = h
        .json(
            "POST",
            "/v1/tenants",
            &h.admin,
            json!({ "id": "acme", "name": "Acme again" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "conflict");

    for (tenant, field) in [
        (json!({ "id": "a/b", "name": "Slash" }), "id"),
        (json!({ "id": "ok", "name": "   " }), "name"),
        (json!({ "id": "ok" }), "name"),
        (json!({ "id": 7, "name": "Seven" }), "id"),
    ] {
        let (status, body) = h.json("POST", "/v1/tenants", &h.admin, tenant).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn a_token_secret_is_shown_once_and_never_listed() {
    let h = Harness::new();
    let created = create_token(&h, "acme", "tenant").await;
    let secret = created["secret"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with(&format!("slc_{id}_")), "{created}");
    assert_eq!(created["scope"], "tenant");
    assert_eq!(created["tenant_id"], "acme");
    assert_eq!(created["revoked_at_ms"], Value::Null);

    let (status, _) = h.send("GET", "/v1/modules", Some(&secret), None).await;
    assert_eq!(status, StatusCode::OK, "the new token works");

    let (status, listed) = h
        .send("GET", "/v1/tenants/acme/tokens", Some(&h.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let tokens = listed["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 3, "the harness's two and this one: {listed}");
    let mine = tokens.iter().find(|t| t["id"] == id.as_str()).unwrap();
    assert_eq!(mine["scope"], "tenant");
    let random_part = secret.rsplit('_').next().unwrap();
    assert!(
        !listed.to_string().contains(random_part),
        "a listing shows no secret: {listed}"
    );
    assert!(tokens.iter().all(|t| t.get("secret").is_none()), "{listed}");
}

#[tokio::test]
async fn a_revoked_token_stays_listed_and_no_longer_authenticates() {
    let h = Harness::new();
    let created = create_token(&h, "acme", "read-only").await;
    let secret = created["secret"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();

    let (status, body) = h
        .send(
            "POST",
            &format!("/v1/tenants/acme/tokens/{id}/revoke"),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], id);
    assert!(body["revoked_at_ms"].as_u64().is_some(), "{body}");
    assert!(body.get("secret").is_none(), "{body}");

    let (status, _) = h.send("GET", "/v1/modules", Some(secret), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, listed) = h
        .send("GET", "/v1/tenants/acme/tokens", Some(&h.admin), None)
        .await;
    let revoked = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap();
    assert!(revoked["revoked_at_ms"].as_u64().is_some(), "{listed}");
}

#[tokio::test]
async fn a_token_is_revoked_only_through_its_own_tenant() {
    let h = Harness::new();
    let created = create_token(&h, "globex", "tenant").await;
    let id = created["id"].as_str().unwrap();
    let (status, body) = h
        .send(
            "POST",
            &format!("/v1/tenants/acme/tokens/{id}/revoke"),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let secret = created["secret"].as_str().unwrap();
    let (status, _) = h.send("GET", "/v1/modules", Some(secret), None).await;
    assert_eq!(status, StatusCode::OK, "the token still works");
}

#[tokio::test]
async fn token_requests_are_checked() {
    let h = Harness::new();
    for (body, field) in [
        (json!({ "scope": "admin" }), "scope"),
        (json!({ "scope": "root" }), "scope"),
        (json!({}), "scope"),
        (json!({ "scope": "tenant", "tenant": "globex" }), "tenant"),
    ] {
        let (status, answer) = h
            .json("POST", "/v1/tenants/acme/tokens", &h.admin, body.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let (status, body) = h
        .json(
            "POST",
            "/v1/tenants/nothing/tokens",
            &h.admin,
            json!({ "scope": "tenant" }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = h
        .send("GET", "/v1/tenants/nothing/tokens", Some(&h.admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn only_admin_tokens_manage_tenants_and_tokens() {
    let h = Harness::new();
    let globex_token = create_token(&h, "globex", "tenant").await;
    let globex_token_id = globex_token["id"].as_str().unwrap();
    let revoke = format!("/v1/tenants/globex/tokens/{globex_token_id}/revoke");
    for token in [&h.acme, &h.acme_read_only, &h.globex] {
        for (method, uri, body) in [
            ("GET", "/v1/tenants", None),
            ("GET", "/v1/tenants/acme", None),
            ("GET", "/v1/tenants/globex", None),
            (
                "POST",
                "/v1/tenants",
                Some(json!({ "id": "new", "name": "New" })),
            ),
            ("GET", "/v1/tenants/acme/tokens", None),
            ("GET", "/v1/tenants/globex/tokens", None),
            (
                "POST",
                "/v1/tenants/acme/tokens",
                Some(json!({ "scope": "tenant" })),
            ),
            (
                "POST",
                "/v1/tenants/globex/tokens",
                Some(json!({ "scope": "tenant" })),
            ),
            ("POST", revoke.as_str(), None),
        ] {
            let (status, answer) = h
                .send(method, uri, Some(token), body.map(|b| b.to_string()))
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {answer}");
            assert_error(&answer, "forbidden");
        }
    }
    let (status, _) = h.send("GET", "/v1/tenants", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = h.send("GET", "/v1/tenants/new", Some(&h.admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was created");
    let secret = globex_token["secret"].as_str().unwrap();
    let (status, _) = h.send("GET", "/v1/modules", Some(secret), None).await;
    assert_eq!(status, StatusCode::OK, "nothing was revoked");
}

#[tokio::test]
async fn an_admin_token_is_refused_on_tenant_routes() {
    let h = Harness::new();
    for uri in ["/v1/modules", "/v1/bindings", "/v1/dlq"] {
        let (status, body) = h.send("GET", uri, Some(&h.admin), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}: {body}");
        assert_error(&body, "forbidden");
    }
}
