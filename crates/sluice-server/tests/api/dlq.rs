//! `/v1/dlq`: the tenant's dead-letter queue. Entries are written through the store, as the
//! pipeline writes them.

use axum::http::StatusCode;
use serde_json::{Value, json};
use sluice_store::{MAX_DLQ_PAGE, NewDeadLetter};
use sluice_types::{CodecError, CodecErrorKind, GuestFailure, ModuleRef, Uplink};

use super::{Harness, assert_error};

/// Dead-letters a message of `device` on `binding` for `tenant`; answers the entry id.
fn dead_letter(h: &Harness, tenant: &str, binding: &str, device: &str) -> i64 {
    let module = ModuleRef::new("lpp", "3");
    h.state
        .store
        .dlq_put(&NewDeadLetter {
            tenant_id: tenant.into(),
            binding: binding.into(),
            uplink: Uplink {
                device_id: device.into(),
                port: 2,
                received_at_ms: 1_700_000_000_000,
                payload: vec![0x01, 0xff, 0x00],
                metadata: vec![("rssi".into(), "-90".into())],
            },
            failure: GuestFailure::GuestError {
                module: module.clone(),
                error: CodecError {
                    kind: CodecErrorKind::InvalidInput,
                    message: "truncated frame".into(),
                },
            },
            module,
            attempts: 3,
        })
        .unwrap()
}

fn ids(page: &Value) -> Vec<i64> {
    page["dead_letters"]
        .as_array()
        .unwrap_or_else(|| panic!("no dead_letters: {page}"))
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn dead_letters_are_paged_filtered_read_deleted_and_purged() {
    let h = Harness::new();
    let up1 = dead_letter(&h, "acme", "up", "dev-1");
    let down = dead_letter(&h, "acme", "down", "dev-2");
    let up2 = dead_letter(&h, "acme", "up", "dev-3");

    let (status, page) = h.send("GET", "/v1/dlq", Some(&h.acme), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), [up1, down, up2]);
    assert_eq!(page["depth"], 3);
    assert_eq!(page["next_after_id"], Value::Null);

    let (status, page) = h.send("GET", "/v1/dlq?limit=2", Some(&h.acme), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), [up1, down]);
    assert_eq!(page["depth"], 3, "depth counts the queue, not the page");
    assert_eq!(page["next_after_id"], down);
    let (_, page) = h
        .send(
            "GET",
            &format!("/v1/dlq?limit=2&after_id={down}"),
            Some(&h.acme),
            None,
        )
        .await;
    assert_eq!(ids(&page), [up2]);
    assert_eq!(page["next_after_id"], Value::Null);

    let (_, page) = h
        .send("GET", "/v1/dlq?binding=up", Some(&h.acme), None)
        .await;
    assert_eq!(ids(&page), [up1, up2]);
    assert_eq!(page["depth"], 2);

    let (status, entry) = h
        .send("GET", &format!("/v1/dlq/{up1}"), Some(&h.acme), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{entry}");
    assert_eq!(entry["id"], up1);
    assert_eq!(entry["binding"], "up");
    assert_eq!(entry["uplink"]["device_id"], "dev-1");
    assert_eq!(entry["uplink"]["payload"], "01ff00");
    assert_eq!(entry["failure_kind"], "guest-error");
    assert_eq!(entry["failure"]["failure"], "guest-error");
    assert_eq!(entry["module"], json!({ "id": "lpp", "version": "3" }));
    assert_eq!(entry["attempts"], 3);
    assert!(entry.get("tenant_id").is_none(), "{entry}");

    let (status, body) = h
        .send("DELETE", &format!("/v1/dlq/{up1}"), Some(&h.acme), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = h
        .send("GET", &format!("/v1/dlq/{up1}"), Some(&h.acme), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "not-found");
    let (status, _) = h
        .send("DELETE", &format!("/v1/dlq/{up1}"), Some(&h.acme), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = h
        .json("POST", "/v1/dlq/purge", &h.acme, json!({ "binding": "up" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["purged"], 1);
    let (_, page) = h.send("GET", "/v1/dlq", Some(&h.acme), None).await;
    assert_eq!(ids(&page), [down]);
    let (status, body) = h.json("POST", "/v1/dlq/purge", &h.acme, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["purged"], 1);
    let (_, page) = h.send("GET", "/v1/dlq", Some(&h.acme), None).await;
    assert_eq!(page["depth"], 0);
    assert_eq!(ids(&page), Vec::<i64>::new());
}

#[tokio::test]
async fn another_tenants_dead_letter_is_not_found() {
    let h = Harness::new();
    let theirs = dead_letter(&h, "globex", "up", "dev-1");
    let mine = dead_letter(&h, "acme", "up", "dev-1");

    let (status, body) = h
        .send("GET", &format!("/v1/dlq/{theirs}"), Some(&h.acme), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let missing_id = mine + 1000;
    let (_, missing) = h
        .send("GET", &format!("/v1/dlq/{missing_id}"), Some(&h.acme), None)
        .await;
    assert_eq!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .replace(&theirs.to_string(), "X"),
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .replace(&missing_id.to_string(), "X"),
        "another tenant's dead letter reads exactly like a missing one"
    );
    let (status, _) = h
        .send("DELETE", &format!("/v1/dlq/{theirs}"), Some(&h.acme), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, page) = h.send("GET", "/v1/dlq", Some(&h.acme), None).await;
    assert_eq!(ids(&page), [mine]);
    assert_eq!(page["depth"], 1);
    let (_, body) = h.json("POST", "/v1/dlq/purge", &h.acme, json!({})).await;
    assert_eq!(body["purged"], 1);

    let (status, entry) = h
        .send("GET", &format!("/v1/dlq/{theirs}"), Some(&h.globex), None)
        .await;
    assert_eq!(status, StatusCode::OK, "globex's entry survived: {entry}");
}

#[tokio::test]
async fn read_only_tokens_read_dead_letters_but_cannot_delete_them() {
    let h = Harness::new();
    let id = dead_letter(&h, "acme", "up", "dev-1");
    let token = &h.acme_read_only;
    let (status, _) = h.send("GET", "/v1/dlq", Some(token), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h
        .send("GET", &format!("/v1/dlq/{id}"), Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = h
        .send("DELETE", &format!("/v1/dlq/{id}"), Some(token), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_error(&body, "forbidden");
    let (status, body) = h.json("POST", "/v1/dlq/purge", token, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(h.state.store.dlq_depth("acme", None).unwrap(), 1);
}

#[tokio::test]
async fn bad_query_parameters_and_ids_are_named() {
    let h = Harness::new();
    let over = format!("limit={}", MAX_DLQ_PAGE + 1);
    for (query, field) in [
        ("limit=0", "limit"),
        (over.as_str(), "limit"),
        ("limit=ten", "limit"),
        ("after_id=-5", "after_id"),
        ("after_id=later", "after_id"),
        ("binding=", "binding"),
        ("binding=a&binding=b", "binding"),
        ("bindings=up", "bindings"),
    ] {
        let (status, body) = h
            .send("GET", &format!("/v1/dlq?{query}"), Some(&h.acme), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_error(&body, "invalid-request");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let (status, _) = h
        .send(
            "GET",
            &format!("/v1/dlq?limit={MAX_DLQ_PAGE}"),
            Some(&h.acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the largest page is allowed");

    for uri in ["/v1/dlq/abc", "/v1/dlq/0", "/v1/dlq/-1"] {
        let (status, body) = h.send("GET", uri, Some(&h.acme), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"]["field"], "id", "{uri}: {body}");
    }

    for (body, field) in [
        (json!({ "bindings": "up" }), Some("bindings")),
        (json!({ "binding": 7 }), Some("binding")),
        (json!({ "binding": "" }), Some("binding")),
    ] {
        let (status, answer) = h.json("POST", "/v1/dlq/purge", &h.acme, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["field"].as_str(), field, "{body}: {answer}");
    }
    let (status, body) = h.send("POST", "/v1/dlq/purge", Some(&h.acme), None).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an empty body never purges: {body}"
    );
}
