//! The hand-written OpenAPI 3 description of the API, served at `/openapi.json`.

use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn json_body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

/// The OpenAPI 3.1 document for every route of [`crate::router`].
pub fn openapi_document() -> Value {
    let name =
        json!({ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } });
    let version = json!({ "name": "version", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 1 } });
    let module = json!({ "$ref": "#/components/schemas/Module" });
    let binding = json!({ "$ref": "#/components/schemas/Binding" });
    let binding_spec = json!({ "$ref": "#/components/schemas/BindingSpec" });
    let dead_letter = json!({ "$ref": "#/components/schemas/DeadLetter" });
    let tenant = json!({ "$ref": "#/components/schemas/Tenant" });
    let token = json!({ "$ref": "#/components/schemas/Token" });
    let dlq_id = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 1 } });
    let tenant_id =
        json!({ "name": "tenant", "in": "path", "required": true, "schema": { "type": "string" } });
    let with_404 = |not_found: &'static str| {
        move |mut responses: serde_json::Map<String, Value>| {
            responses.insert(
                "401".into(),
                error_response("Missing, malformed or revoked token"),
            );
            responses.insert("404".into(), error_response(not_found));
            Value::Object(responses)
        }
    };
    let common = with_404("No such module for this tenant");
    let binding_responses = with_404("No such binding for this tenant");
    let dlq_responses = with_404("No such dead letter for this tenant");
    let admin_responses = with_404("No such tenant (or token of that tenant)");
    let listing = |mut responses: serde_json::Map<String, Value>| {
        responses.insert(
            "401".into(),
            error_response("Missing, malformed or revoked token"),
        );
        Value::Object(responses)
    };
    let map = |v: Value| match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Sluice API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Tenant-scoped registry and sandbox for IoT codecs and routers. Every /v1 route needs `Authorization: Bearer <token>`; another tenant's objects answer 404. /v1/tenants routes need an admin token."
        },
        "security": [ { "bearer": [] } ],
        "paths": {
            "/livez": { "get": {
                "summary": "Liveness", "security": [],
                "responses": { "200": ok("The process is up", json!({ "type": "object" })) }
            } },
            "/readyz": { "get": {
                "summary": "Readiness: the store answers and every broker connection is up", "security": [],
                "responses": {
                    "200": ok("Ready", json!({ "type": "object" })),
                    "503": ok("Not ready; `store` and `brokers` say which part", json!({ "type": "object" }))
                }
            } },
            "/metrics": { "get": {
                "summary": "Prometheus metrics (OpenMetrics text)", "security": [],
                "responses": { "200": { "description": "sluice_messages_total, sluice_dead_letters_total, sluice_guest_call_seconds, sluice_guest_fuel_total, sluice_message_latency_seconds, sluice_queue_depth, sluice_in_flight, sluice_dlq_depth, ..." } }
            } },
            "/openapi.json": { "get": {
                "summary": "This document", "security": [],
                "responses": { "200": ok("OpenAPI 3 document", json!({ "type": "object" })) }
            } },
            "/v1/modules": {
                "get": {
                    "summary": "List the tenant's modules",
                    "responses": common(map(json!({ "200": ok("Modules by name", json!({
                        "type": "object", "properties": { "modules": { "type": "array", "items": module } }
                    })) })))
                },
                "post": {
                    "summary": "Create a module",
                    "requestBody": json_body(json!({
                        "type": "object", "required": ["name", "world"], "additionalProperties": false,
                        "properties": { "name": { "type": "string" }, "world": { "enum": ["codec", "router"] } }
                    })),
                    "responses": common(map(json!({
                        "201": ok("Created", module.clone()),
                        "400": error_response("Malformed body; `error.field` names the field"),
                        "403": error_response("Read-only token"),
                        "409": error_response("A module of this name exists")
                    })))
                }
            },
            "/v1/modules/{name}": { "get": {
                "summary": "A module with its versions",
                "parameters": [name.clone()],
                "responses": common(map(json!({ "200": ok("The module", module.clone()) })))
            } },
            "/v1/modules/{name}/versions": { "post": {
                "summary": "Upload a version: validated, compiled and tested before it is stored",
                "parameters": [name.clone()],
                "requestBody": json_body(json!({
                    "type": "object", "additionalProperties": false,
                    "description": "Exactly one of component_base64, js_source and rust_source",
                    "properties": {
                        "component_base64": { "type": "string", "contentEncoding": "base64" },
                        "js_source": { "type": "string", "description": "A JavaScript codec (TS013 decodeUplink/encodeDownlink or legacy Decoder/Encoder), compiled into a codec component" },
                        "rust_source": { "type": "string", "description": "A Rust codec or router (a lib.rs against the guest SDK), built here in a sandboxed, offline cargo" },
                        "policy": { "$ref": "#/components/schemas/ModulePolicy" },
                        "vectors_yaml": { "type": "string" }
                    }
                })),
                "responses": common(map(json!({
                    "201": ok("Stored", json!({ "$ref": "#/components/schemas/Upload" })),
                    "200": ok("An identical version existed and is returned", json!({ "$ref": "#/components/schemas/Upload" })),
                    "400": error_response("Malformed body or base64"),
                    "403": error_response("Read-only token"),
                    "422": error_response("Invalid component, wrong world, JavaScript syntax error (`js-syntax-error` with `line`, `column`), Rust compile error (`rust-compile-error` with `diagnostics`, `line`, `column`), build failure, invalid vectors or failing vectors (`failures`: [{name, diff}])"),
                    "501": error_response("`rust_source` on a server without a Rust toolchain (`rust-builds-unavailable`)")
                })))
            } },
            "/v1/modules/{name}/versions/{version}": { "get": {
                "summary": "One version: metadata, test vectors, and the source it was built from (`null` for an uploaded component)",
                "parameters": [name.clone(), version.clone()],
                "responses": listing(map(json!({
                    "200": ok("The version", json!({ "type": "object", "properties": {
                        "version": { "type": "integer" }, "sha256": { "type": "string" },
                        "size_bytes": { "type": "integer" }, "test_vectors_yaml": { "type": ["string", "null"] },
                        "source_language": { "enum": ["javascript", "rust", null] },
                        "source": { "type": ["string", "null"] }
                    } })),
                    "400": error_response("The version is not a number"),
                    "404": error_response("No such module or version")
                })))
            } },
            "/v1/modules/{name}/check": { "post": {
                "summary": "Build, load and test code without storing it: every vector's result and an optional sample decode",
                "parameters": [name.clone()],
                "requestBody": json_body(json!({
                    "type": "object", "additionalProperties": false,
                    "description": "The members of an upload, and `try`: a payload to decode",
                    "properties": {
                        "component_base64": { "type": "string", "contentEncoding": "base64" },
                        "js_source": { "type": "string" },
                        "rust_source": { "type": "string" },
                        "policy": { "$ref": "#/components/schemas/ModulePolicy" },
                        "vectors_yaml": { "type": "string" },
                        "try": { "type": "object", "properties": {
                            "payload_hex": { "type": "string" }, "payload_base64": { "type": "string" },
                            "port": { "type": "integer" }, "device_id": { "type": "string" }
                        } }
                    }
                })),
                "responses": common(map(json!({
                    "200": ok("Results (failing vectors and a failing decode are results)", json!({
                        "type": "object", "properties": {
                            "vectors": { "type": "array", "items": { "type": "object", "properties": {
                                "name": { "type": "string" }, "passed": { "type": "boolean" },
                                "diff": { "type": ["string", "null"] }, "fuel_consumed": { "type": "integer" },
                                "actual": {}
                            } } },
                            "passed": { "type": "integer" }, "failed": { "type": "integer" },
                            "try": { "type": "object", "description": "{document | failure, fuel_consumed, logs}" }
                        }
                    })),
                    "400": error_response("Malformed body, base64 or try payload"),
                    "403": error_response("Read-only token"),
                    "422": error_response("The code does not build or load (as for an upload), or the vectors do not parse")
                })))
            } },
            "/v1/modules/{name}/versions/{version}/activate": { "post": {
                "summary": "Make a version active",
                "parameters": [name.clone(), version],
                "responses": common(map(json!({
                    "200": ok("The module", module.clone()),
                    "400": error_response("The version is not a number"),
                    "403": error_response("Read-only token")
                })))
            } },
            "/v1/modules/{name}/rollback": { "post": {
                "summary": "Re-activate the previously active version",
                "parameters": [name.clone()],
                "responses": common(map(json!({
                    "200": ok("The module", module.clone()),
                    "403": error_response("Read-only token"),
                    "409": error_response("No previously active version")
                })))
            } },
            "/v1/modules/{name}/decode": { "post": {
                "summary": "Decode one payload with the active version",
                "parameters": [name],
                "requestBody": json_body(json!({
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "payload_hex": { "type": "string" },
                        "payload_base64": { "type": "string" },
                        "port": { "type": "integer", "minimum": 0, "maximum": 65535 },
                        "device_id": { "type": "string" }
                    }
                })),
                "responses": common(map(json!({
                    "200": ok("The decoded document", json!({
                        "type": "object",
                        "properties": {
                            "version": { "type": "integer" },
                            "document": { "type": "object" },
                            "fuel_consumed": { "type": "integer" },
                            "logs": { "type": "array" }
                        }
                    })),
                    "400": error_response("Malformed body or payload"),
                    "409": error_response("The module has no active version"),
                    "422": error_response("The guest failed; `failure` is the typed GuestFailure")
                })))
            } },
            "/v1/bindings": {
                "get": {
                    "summary": "List the tenant's bindings",
                    "responses": listing(map(json!({ "200": ok("Bindings by name", json!({
                        "type": "object", "properties": { "bindings": { "type": "array", "items": binding.clone() } }
                    })) })))
                },
                "post": {
                    "summary": "Create a binding",
                    "requestBody": json_body(binding_spec.clone()),
                    "responses": listing(map(json!({
                        "201": ok("Created", binding.clone()),
                        "400": error_response("Malformed body, name, `sources` or `sinks`; `error.field` names the field (e.g. `sinks[1]`)"),
                        "403": error_response("Read-only token"),
                        "409": error_response("A binding of this name exists"),
                        "422": error_response("`codec` or `router` names no module of this tenant (`unknown-module`) or a module of the other world (`wrong-world`); `error.field` says which")
                    })))
                }
            },
            "/v1/bindings/{name}": {
                "get": {
                    "summary": "A binding",
                    "parameters": [name.clone()],
                    "responses": binding_responses(map(json!({ "200": ok("The binding", binding.clone()) })))
                },
                "put": {
                    "summary": "Replace a binding's codec, router, config, sources and sinks",
                    "description": "The body is a binding spec; `name` may be left out and, if given, must be the path's (bindings are not renamed).",
                    "parameters": [name.clone()],
                    "requestBody": json_body(binding_spec),
                    "responses": binding_responses(map(json!({
                        "200": ok("The binding", binding.clone()),
                        "400": error_response("Malformed body, `sources` or `sinks`, or a `name` other than the path's"),
                        "403": error_response("Read-only token"),
                        "422": error_response("`codec` or `router` names no module of this tenant or a module of the other world")
                    })))
                },
                "delete": {
                    "summary": "Delete a binding (its dead letters are kept)",
                    "parameters": [name.clone()],
                    "responses": binding_responses(map(json!({
                        "204": { "description": "Deleted" },
                        "403": error_response("Read-only token")
                    })))
                }
            },
            "/v1/dlq": { "get": {
                "summary": "A page of the tenant's dead letters, oldest first, with the queue's depth",
                "parameters": [
                    { "name": "binding", "in": "query", "schema": { "type": "string" }, "description": "Only this binding's entries (and depth)" },
                    { "name": "after_id", "in": "query", "schema": { "type": "integer", "minimum": 0 }, "description": "Entries with a greater id: the previous page's `next_after_id`" },
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": sluice_store::MAX_DLQ_PAGE, "default": crate::dlq::DEFAULT_DLQ_PAGE } }
                ],
                "responses": listing(map(json!({
                    "200": ok("A page", json!({
                        "type": "object",
                        "properties": {
                            "dead_letters": { "type": "array", "items": dead_letter.clone() },
                            "depth": { "type": "integer", "description": "Entries for `binding` (or for all) in the whole queue" },
                            "next_after_id": { "type": ["integer", "null"], "description": "`after_id` of the next page; null on the last" }
                        }
                    })),
                    "400": error_response("A bad or unknown query parameter; `error.field` names it")
                })))
            } },
            "/v1/dlq/replay": { "post": {
                "summary": "Run dead letters through their bindings again, with the versions active now",
                "description": "Without `ids`, every entry (of `binding`, when given), up to 10000. A settled entry leaves the queue; one that fails again is replaced by its new dead letter.",
                "requestBody": json_body(json!({
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "ids": { "type": "array", "items": { "type": "integer" } },
                        "binding": { "type": "string" }
                    }
                })),
                "responses": listing(map(json!({
                    "200": ok("Counts and one result per entry", json!({
                        "type": "object", "properties": {
                            "replayed": { "type": "integer" }, "delivered": { "type": "integer" },
                            "dropped": { "type": "integer" }, "dead_lettered": { "type": "integer" },
                            "not_replayed": { "type": "integer" }, "results": { "type": "array" }
                        }
                    })),
                    "400": error_response("Malformed body"),
                    "403": error_response("Read-only token"),
                    "503": error_response("No pipeline runs in this server, or it is shutting down")
                })))
            } },
            "/v1/bindings/{name}/messages": { "post": {
                "summary": "Run one message (or a batch of up to 1000) through the binding; answers once each is settled",
                "parameters": [name.clone()],
                "requestBody": json_body(json!({
                    "oneOf": [
                        { "$ref": "#/components/schemas/IngestMessage" },
                        { "type": "object", "required": ["messages"], "properties": {
                            "messages": { "type": "array", "maxItems": 1000, "items": { "$ref": "#/components/schemas/IngestMessage" } }
                        } }
                    ]
                })),
                "responses": listing(map(json!({
                    "200": ok("The outcome (`delivered` with `outputs`, `dropped` with `reasons`, or `dead-lettered` with `id`, `kind`, `reason`); a batch answers `{results: [...]}`", json!({ "type": "object" })),
                    "400": error_response("Malformed message; `error.field` names it (`messages[3].payload_hex`)"),
                    "403": error_response("Read-only token"),
                    "404": error_response("No such binding"),
                    "503": error_response("No pipeline runs in this server, or it is shutting down")
                })))
            } },
            "/v1/bindings/{name}/pause": { "post": {
                "summary": "Pause the binding: its messages wait, unacknowledged, until resumed (survives restarts)",
                "parameters": [name.clone()],
                "responses": listing(map(json!({
                    "200": ok("The binding", json!({ "type": "object" })),
                    "403": error_response("Read-only token"),
                    "404": error_response("No such binding")
                })))
            } },
            "/v1/bindings/{name}/resume": { "post": {
                "summary": "Resume the binding: the waiting messages are processed in order",
                "parameters": [name.clone()],
                "responses": listing(map(json!({
                    "200": ok("The binding", json!({ "type": "object" })),
                    "403": error_response("Read-only token"),
                    "404": error_response("No such binding")
                })))
            } },
            "/v1/bindings/{name}/status": { "get": {
                "summary": "The binding's worker now: pause, queue depth, in flight, quarantine breaker, restarts, throttling",
                "parameters": [name.clone()],
                "responses": listing(map(json!({
                    "200": ok("Status", json!({ "type": "object", "properties": {
                        "name": { "type": "string" }, "paused": { "type": "boolean" },
                        "running": { "type": "boolean" }, "worker": { "type": ["object", "null"] }
                    } })),
                    "404": error_response("No such binding")
                })))
            } },
            "/v1/bindings/{name}/recent": { "get": {
                "summary": "The binding's last 100 settled messages, oldest first",
                "parameters": [name.clone()],
                "responses": listing(map(json!({
                    "200": ok("Messages with their outcome and, when decoded, their `document`", json!({ "type": "object", "properties": { "messages": { "type": "array" } } })),
                    "404": error_response("No such binding"),
                    "503": error_response("No pipeline runs in this server")
                })))
            } },
            "/v1/dlq/purge": { "post": {
                "summary": "Delete the dead letters of one binding, or (with `{}`) all of the tenant's",
                "requestBody": json_body(json!({
                    "type": "object", "additionalProperties": false,
                    "properties": { "binding": { "type": "string" } }
                })),
                "responses": listing(map(json!({
                    "200": ok("How many were deleted", json!({
                        "type": "object", "properties": { "purged": { "type": "integer" } }
                    })),
                    "400": error_response("Malformed body"),
                    "403": error_response("Read-only token")
                })))
            } },
            "/v1/dlq/{id}": {
                "get": {
                    "summary": "A dead letter",
                    "parameters": [dlq_id.clone()],
                    "responses": dlq_responses(map(json!({
                        "200": ok("The entry", dead_letter),
                        "400": error_response("The id is not a number")
                    })))
                },
                "delete": {
                    "summary": "Delete a dead letter without replaying it",
                    "parameters": [dlq_id],
                    "responses": dlq_responses(map(json!({
                        "204": { "description": "Deleted" },
                        "400": error_response("The id is not a number"),
                        "403": error_response("Read-only token")
                    })))
                }
            },
            "/v1/tenants": {
                "get": {
                    "summary": "List every tenant (admin token)",
                    "responses": listing(map(json!({
                        "200": ok("Tenants by id", json!({
                            "type": "object", "properties": { "tenants": { "type": "array", "items": tenant.clone() } }
                        })),
                        "403": error_response("Not an admin token")
                    })))
                },
                "post": {
                    "summary": "Create a tenant (admin token)",
                    "requestBody": json_body(json!({
                        "type": "object", "required": ["id", "name"], "additionalProperties": false,
                        "properties": { "id": { "type": "string" }, "name": { "type": "string" } }
                    })),
                    "responses": listing(map(json!({
                        "201": ok("Created", tenant.clone()),
                        "400": error_response("Malformed body, id or name; `error.field` names the field"),
                        "403": error_response("Not an admin token"),
                        "409": error_response("A tenant with this id exists")
                    })))
                }
            },
            "/v1/tenants/{tenant}": { "get": {
                "summary": "A tenant (admin token)",
                "parameters": [tenant_id.clone()],
                "responses": admin_responses(map(json!({
                    "200": ok("The tenant", tenant.clone()),
                    "403": error_response("Not an admin token")
                })))
            } },
            "/v1/tenants/{tenant}/throttle": {
                "put": {
                    "summary": "Set the tenant-wide throttle budget shared by all its bindings; over budget, messages wait (admin token)",
                    "parameters": [tenant_id.clone()],
                    "requestBody": json_body(json!({ "$ref": "#/components/schemas/Throttle" })),
                    "responses": admin_responses(map(json!({
                        "200": ok("The tenant with its budget", tenant.clone()),
                        "400": error_response("A bad setting; `error.field` names it (`messages_per_second`)"),
                        "403": error_response("Not an admin token")
                    })))
                },
                "delete": {
                    "summary": "Remove the tenant-wide throttle budget (admin token)",
                    "parameters": [tenant_id.clone()],
                    "responses": admin_responses(map(json!({
                        "200": ok("The tenant, without a budget", tenant),
                        "403": error_response("Not an admin token")
                    })))
                }
            },
            "/v1/tenants/{tenant}/tokens": {
                "get": {
                    "summary": "The tenant's tokens, revoked ones included, without secrets (admin token)",
                    "parameters": [tenant_id.clone()],
                    "responses": admin_responses(map(json!({
                        "200": ok("Tokens, oldest first", json!({
                            "type": "object", "properties": { "tokens": { "type": "array", "items": token.clone() } }
                        })),
                        "403": error_response("Not an admin token")
                    })))
                },
                "post": {
                    "summary": "Create a token bound to the tenant; the answer holds its secret, shown only this once (admin token)",
                    "parameters": [tenant_id.clone()],
                    "requestBody": json_body(json!({
                        "type": "object", "required": ["scope"], "additionalProperties": false,
                        "properties": { "scope": { "enum": ["tenant", "read-only"] } }
                    })),
                    "responses": admin_responses(map(json!({
                        "201": ok("The token and its secret", json!({
                            "allOf": [token.clone(), {
                                "type": "object", "required": ["secret"],
                                "properties": { "secret": { "type": "string", "description": "`slc_<id>_<64 hex>`; never shown again" } }
                            }]
                        })),
                        "400": error_response("Malformed body or a scope a tenant token cannot have (`admin`)"),
                        "403": error_response("Not an admin token")
                    })))
                }
            },
            "/v1/tenants/{tenant}/tokens/{id}/revoke": { "post": {
                "summary": "Revoke one of the tenant's tokens; it stays listed with `revoked_at_ms` (admin token)",
                "parameters": [tenant_id, { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": admin_responses(map(json!({
                    "200": ok("The revoked token", token),
                    "403": error_response("Not an admin token")
                })))
            } }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "IngestMessage": {
                    "type": "object", "required": ["device_id"], "additionalProperties": false,
                    "properties": {
                        "device_id": { "type": "string", "description": "1-128 characters, none of / + # * > . or spaces" },
                        "port": { "type": "integer", "minimum": 0, "maximum": 65535 },
                        "payload_hex": { "type": "string" },
                        "payload_base64": { "type": "string" },
                        "metadata": { "description": "An object of strings, or a list of [key, value] pairs" },
                        "received_at_ms": { "type": "integer" }
                    }
                },
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": { "error": {
                        "type": "object", "required": ["code", "message"],
                        "properties": {
                            "code": { "type": "string" },
                            "message": { "type": "string" },
                            "field": { "type": "string" }
                        }
                    } }
                },
                "Module": {
                    "type": "object",
                    "properties": {
                        "name": { "type": "string" },
                        "world": { "enum": ["codec", "router"] },
                        "active_version": { "type": ["integer", "null"] },
                        "created_at_ms": { "type": "integer" },
                        "versions": { "type": "array", "items": { "type": "object" } }
                    }
                },
                "Upload": {
                    "type": "object",
                    "properties": {
                        "version": { "type": "integer" },
                        "sha256": { "type": "string" },
                        "size_bytes": { "type": "integer" },
                        "created": { "type": "boolean" }
                    }
                },
                "BindingSpec": {
                    "type": "object", "required": ["name", "codec"], "additionalProperties": false,
                    "properties": {
                        "name": { "type": "string" },
                        "codec": { "type": "string", "description": "A codec module of the tenant" },
                        "router": { "type": ["string", "null"], "description": "A router module of the tenant" },
                        "config": { "type": "object", "additionalProperties": { "type": "string" } },
                        "sources": { "type": "array", "items": { "type": "object" }, "default": [] },
                        "sinks": { "type": "array", "items": { "type": "object" }, "default": [] }
                    }
                },
                "Binding": {
                    "type": "object",
                    "properties": {
                        "name": { "type": "string" },
                        "codec": { "type": "string" },
                        "router": { "type": ["string", "null"] },
                        "config": { "type": "object", "additionalProperties": { "type": "string" } },
                        "sources": { "type": "array", "items": { "type": "object" } },
                        "sinks": { "type": "array", "items": { "type": "object" } },
                        "created_at_ms": { "type": "integer" },
                        "updated_at_ms": { "type": "integer" }
                    }
                },
                "DeadLetter": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "integer" },
                        "binding": { "type": "string" },
                        "uplink": {
                            "type": "object",
                            "properties": {
                                "device_id": { "type": "string" },
                                "port": { "type": "integer" },
                                "received_at_ms": { "type": "integer" },
                                "payload": { "type": "string", "description": "hex" },
                                "metadata": { "type": "array", "items": { "type": "array", "items": { "type": "string" } } }
                            }
                        },
                        "failure": { "type": "object", "description": "The typed GuestFailure; `failure` is its kind" },
                        "failure_kind": { "type": "string" },
                        "module": {
                            "type": "object",
                            "properties": { "id": { "type": "string" }, "version": { "type": "string" } }
                        },
                        "attempts": { "type": "integer" },
                        "created_at_ms": { "type": "integer" }
                    }
                },
                "Tenant": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "string" },
                        "name": { "type": "string" },
                        "created_at_ms": { "type": "integer" },
                        "throttle": { "$ref": "#/components/schemas/Throttle" }
                    }
                },
                "Throttle": {
                    "type": "object",
                    "description": "Token-bucket rates; a rate left out is not limited",
                    "additionalProperties": false,
                    "properties": {
                        "messages_per_second": { "type": "number", "exclusiveMinimum": 0 },
                        "fuel_per_second": { "type": "integer", "minimum": 1 },
                        "burst_seconds": { "type": "number", "exclusiveMinimum": 0, "maximum": 60, "default": 1 }
                    }
                },
                "Token": {
                    "type": "object",
                    "description": "An API token without its secret",
                    "properties": {
                        "id": { "type": "string" },
                        "scope": { "enum": ["admin", "tenant", "read-only"] },
                        "tenant_id": { "type": ["string", "null"] },
                        "created_at_ms": { "type": "integer" },
                        "revoked_at_ms": { "type": ["integer", "null"] }
                    }
                },
                "ModulePolicy": {
                    "type": "object",
                    "description": "limits, clock (virtual|real|denied), grants, fresh_instance_per_call; every field optional"
                }
            }
        }
    })
}
