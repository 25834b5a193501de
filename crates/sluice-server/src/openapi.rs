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
    let common = |mut responses: serde_json::Map<String, Value>| {
        responses.insert(
            "401".into(),
            error_response("Missing, malformed or revoked token"),
        );
        responses.insert(
            "404".into(),
            error_response("No such module for this tenant"),
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
            "description": "Tenant-scoped registry and sandbox for IoT codecs and routers. Every /v1 route needs `Authorization: Bearer <token>`; another tenant's objects answer 404."
        },
        "security": [ { "bearer": [] } ],
        "paths": {
            "/livez": { "get": {
                "summary": "Liveness", "security": [],
                "responses": { "200": ok("The process is up", json!({ "type": "object" })) }
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
                    "type": "object", "required": ["component_base64"], "additionalProperties": false,
                    "properties": {
                        "component_base64": { "type": "string", "contentEncoding": "base64" },
                        "policy": { "$ref": "#/components/schemas/ModulePolicy" },
                        "vectors_yaml": { "type": "string" }
                    }
                })),
                "responses": common(map(json!({
                    "201": ok("Stored", json!({ "$ref": "#/components/schemas/Upload" })),
                    "200": ok("An identical version existed and is returned", json!({ "$ref": "#/components/schemas/Upload" })),
                    "400": error_response("Malformed body or base64"),
                    "403": error_response("Read-only token"),
                    "422": error_response("Invalid component, wrong world, invalid vectors or failing vectors (`failures`: [{name, diff}])")
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
            } }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
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
                "ModulePolicy": {
                    "type": "object",
                    "description": "limits, clock (virtual|real|denied), grants, fresh_instance_per_call; every field optional"
                }
            }
        }
    })
}
